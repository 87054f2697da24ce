"""A checkpoint is data: loading a crafted one under `mnist-edge export` or `train --resume` never runs its code."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch


class Payload:
    """Unpickling this object runs a shell command: what a hostile .pt file carries."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def crafted_checkpoint(folder: Path) -> tuple[Path, Path]:
    marker = folder / "payload-ran"
    path = folder / "checkpoint.pt"
    torch.save({"format": 1, "config": Payload(marker), "model": {}, "history": [{"epoch": 1}]}, path)
    return path, marker


@pytest.mark.parametrize("command", [
    lambda path: ["export", "--checkpoint", str(path), "--out", str(path.parent / "bundle")],
    lambda path: ["train", "--resume", "--threads", "1", "--out", str(path.parent)],
], ids=["export", "train-resume"])
def test_a_checkpoint_that_carries_code_is_refused_without_running_it(command, tmp_path):
    path, marker = crafted_checkpoint(tmp_path)
    result = subprocess.run([sys.executable, "-m", "mnist_edge.cli", *command(path)], capture_output=True,
                            text=True, timeout=300)
    assert not marker.exists(), "the checkpoint's payload ran"
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is not a readable training checkpoint" in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
