"""The training checkpoint: its one writer and its one reader.

A checkpoint is loaded with `torch.load(weights_only=True)`: it holds tensors and plain Python values only, so
loading a file someone handed over can never run code from it.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from mnist_edge.train.config import Config, config_from_dict
from mnist_edge.train.errors import CheckpointError, ConfigError
from mnist_edge.train.model import MnistNet

FORMAT = 1
KEYS = ("format", "config", "model", "optimizer", "scheduler", "generator", "history")


@dataclass
class Checkpoint:
    config: Config
    model: dict[str, torch.Tensor]  # the network's state_dict
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    generator: torch.Tensor  # the augmentation and shuffling RNG's state
    history: list[dict]  # one record per finished epoch

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}


def save_checkpoint(checkpoint: Checkpoint, path: Path) -> None:
    """Writes the checkpoint atomically: a crash mid-write leaves the previous file intact."""
    state = {**asdict(checkpoint), "format": FORMAT, "config": asdict(checkpoint.config)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".pt.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: Path) -> Checkpoint:
    """Raises CheckpointError, naming the file, for a missing, unreadable or foreign checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"there is no checkpoint at {path}; train one with `mnist-edge train --out RUN`")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # damage or a pickle of code: unzipping and unpickling fail with many types
        reason = str(error).strip().splitlines()[0][:200]
        raise CheckpointError(f"{path} is not a readable training checkpoint ({reason})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or not set(KEYS) <= state.keys():
        raise CheckpointError(f"{path} is not a checkpoint written by `mnist-edge train` (format {FORMAT})")
    try:
        config = config_from_dict(state["config"])
    except (ConfigError, TypeError) as error:
        raise CheckpointError(f"{path} holds a recipe this version cannot use ({error})") from None
    return Checkpoint(config, state["model"], state["optimizer"], state["scheduler"], state["generator"],
                      state["history"])


def load_model(path: Path) -> tuple[MnistNet, Checkpoint]:
    """The trained network (in eval mode) and the checkpoint it came from."""
    checkpoint = read_checkpoint(path)
    model = MnistNet(checkpoint.config.widths, stem=checkpoint.config.stem)
    try:
        model.load_state_dict(checkpoint.model)
    except RuntimeError:
        raise CheckpointError(f"{path} does not hold an MnistNet with widths {checkpoint.config.widths}: its "
                              "weights have other names or shapes") from None
    if not checkpoint.history:
        raise CheckpointError(f"{path} holds no finished epoch")
    return model.eval(), checkpoint
