"""MNIST from the gzip files vendored in data/mnist/: checksums verified before use, decompressed once into
a cache in torchvision's layout, and read by torchvision's own MNIST dataset."""
from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torchvision.datasets import MNIST

from mnist_edge.contract import sha256_of
from mnist_edge.train.errors import DataError

VENDORED_DIR = Path(__file__).resolve().parents[1] / "data" / "mnist"
FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def default_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "mnist-edge"


def read_checksums(data_dir: Path) -> dict[str, str]:
    sums = data_dir / "SHA256SUMS"
    if not sums.is_file():
        raise DataError(f"{sums} is missing: restore it with `git checkout -- {data_dir.name}/SHA256SUMS`")
    pairs = (line.split() for line in sums.read_text().splitlines() if line.strip())
    return {name.lstrip("*"): digest for digest, name in pairs}


def verify(data_dir: Path) -> None:
    """Raises DataError unless each of the four files is present and matches SHA256SUMS."""
    expected = read_checksums(data_dir)
    for name in FILES:
        path = data_dir / name
        fix = f"restore it from the repository (`git checkout -- {path}`) or pass --data-dir"
        if not path.is_file():
            raise DataError(f"MNIST file {path} is missing: {fix}")
        if sha256_of(path) != expected.get(name):
            raise DataError(f"MNIST file {path} is corrupt (its sha256 does not match SHA256SUMS): {fix}")


def unpack(data_dir: Path, cache_dir: Path) -> Path:
    """Decompresses the verified files into cache_dir/MNIST/raw (torchvision's layout); returns cache_dir.

    Each file is written under a temporary name and renamed, so an interrupted run never leaves a truncated
    file that a later run would trust; a stamp with the gzip's sha256 marks a finished file.
    """
    raw = cache_dir / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    checksums = read_checksums(data_dir)
    for name in FILES:
        target = raw / name.removesuffix(".gz")
        stamp = target.with_suffix(".sha256")
        if target.is_file() and stamp.is_file() and stamp.read_text() == checksums[name]:
            continue
        with gzip.open(data_dir / name) as src, tempfile.NamedTemporaryFile(dir=raw, delete=False) as tmp:
            shutil.copyfileobj(src, tmp)
        os.replace(tmp.name, target)
        stamp.write_text(checksums[name])
    return cache_dir


def load_split(train: bool, data_dir: Path | None = None,
               cache_dir: Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (images uint8 [N, 28, 28], labels int64 [N]) of the training or the test split.

    Without the vendored folder (an install without the checkout's data/) torchvision downloads the files,
    where a network is there; a data_dir that was asked for must exist.
    """
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DataError(f"--data-dir {data_dir} is not a folder: point it at the folder with the four MNIST .gz files")
    data_dir = Path(data_dir) if data_dir else VENDORED_DIR
    if data_dir.is_dir():
        verify(data_dir)
        dataset = MNIST(unpack(data_dir, cache_dir), train=train, download=False)
    else:
        dataset = MNIST(cache_dir, train=train, download=True)
    return dataset.data, dataset.targets
