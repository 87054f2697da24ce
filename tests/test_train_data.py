import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mnist_edge.train.data import VENDORED_DIR, DataError, load_split, verify


@pytest.fixture()
def data_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "mnist"
    shutil.copytree(VENDORED_DIR, copy)
    return copy


def test_vendored_files_pass_their_checksums():
    verify(VENDORED_DIR)


def test_splits_load_through_torchvision(tmp_path):
    images, labels = load_split(train=False, cache_dir=tmp_path)
    assert images.shape == (10_000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (10_000,) and set(labels.tolist()) == set(range(10))
    # The decompressed cache is in torchvision's layout.
    assert (tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()


def test_corrupt_file_names_the_file(data_copy):
    target = data_copy / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz is corrupt"):
        verify(data_copy)


def test_missing_file_names_the_file(data_copy):
    (data_copy / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz is missing"):
        verify(data_copy)


def test_cli_reports_corrupt_data_in_one_sentence(data_copy, tmp_path):
    (data_copy / "train-labels-idx1-ubyte.gz").write_bytes(b"not a gzip file")
    result = subprocess.run(
        [sys.executable, "-m", "mnist_edge.train", "--data-dir", str(data_copy), "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "train-labels-idx1-ubyte.gz is corrupt" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_data_dir_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        load_split(train=False, data_dir=tmp_path / "nowhere", cache_dir=tmp_path)
