"""Reads a checkpoint written by train/ back into an MnistNet, with the facts about its run the manifest needs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from export.errors import BadInput
from train.model import MnistNet


@dataclass
class TrainingRun:
    model: MnistNet  # in eval mode
    seed: int
    epochs: int  # finished epochs
    final: dict  # metrics of the last finished epoch


def load_checkpoint(path: Path) -> TrainingRun:
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"checkpoint {path} does not exist: train one with `mnist-edge train --out RUN`.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # a damaged file fails anywhere in unzipping or unpickling, with many exception types
        raise BadInput(f"checkpoint {path} is corrupt or not a file saved by PyTorch.") from None
    if not isinstance(state, dict) or not {"model", "config", "history"} <= state.keys() or not state["history"]:
        raise BadInput(f"checkpoint {path} is not a training checkpoint of `mnist-edge train` "
                       "(it needs the keys model, config and a non-empty history).")
    widths = tuple(state["config"].get("widths", MnistNet().widths))
    try:
        model = MnistNet(widths)
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, ValueError, AttributeError):
        raise BadInput(f"checkpoint {path} does not hold an MnistNet with widths {widths}: "
                       "its weights have other names or shapes.") from None
    return TrainingRun(model.eval(), int(state["config"].get("seed", 0)), len(state["history"]),
                       state["history"][-1])
