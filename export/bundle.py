"""Puts a finished bundle in place as a whole: the output folder holds either the old bundle or the new one,
never a mix, and an export that stops early leaves it untouched."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from mnist_edge.contract import MANIFEST_FILE as MANIFEST
from mnist_edge.export.errors import BadInput


def check_destination(out: Path) -> None:
    """Refuses, before any work, an output path that is a file or a folder of other things than a bundle."""
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} is a file; give a folder for the bundle.")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise BadInput(f"--out {out} holds files but no {MANIFEST}; refusing to replace a folder that is not "
                       "a bundle (give an empty or a new folder).")


def install(finished: Path, out: Path) -> None:
    """Moves the files and subfolders of the folder `finished` to the folder `out`, replacing the bundle there.

    They are first copied into a hidden folder next to `out` (same file system), so that the switch itself is
    two renames: the old bundle out of the way, the new one in.
    """
    incoming = out.parent / f".{out.name}.new-{os.getpid()}"
    retired = out.parent / f".{out.name}.old-{os.getpid()}"
    try:
        incoming.mkdir(parents=True)
        for path in finished.iterdir():
            copy = shutil.copytree if path.is_dir() else shutil.copyfile  # the Triton model repository is a tree
            copy(path, incoming / path.name)
        if out.exists():
            out.rename(retired)
        incoming.rename(out)
    except OSError as err:
        raise BadInput(f"cannot write the bundle to {out}: {err.strerror or err}.") from None
    finally:
        if retired.exists() and not out.exists():  # stopped between the two renames: put the old bundle back
            retired.rename(out)
        shutil.rmtree(incoming, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)
