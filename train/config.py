"""The training recipe and where it runs: one dataclass, its defaults the project's default recipe."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from typing import Any

from mnist_edge.train.errors import ConfigError


@dataclass
class Config:
    epochs: int = 15
    batch_size: int = 256
    lr: float = 0.3  # peak learning rate of the one-cycle schedule
    schedule: str = "onecycle"  # onecycle | cosine | constant
    warmup: float = 0.2  # fraction of the steps spent rising to the peak (onecycle)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.05
    max_degrees: float = 10.0
    max_shift: float = 2.0
    max_scale: float = 0.1
    widths: tuple[int, ...] = (8, 8, 16, 16, 16, 16)
    val_split: int = 0  # training images held out for tuning; the test set is never used to tune
    subset: int = 0  # train on only the first N training images (smoke tests); 0 = all
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto | bf16 | fp32: the arithmetic of the training step (evaluation is always fp32)
    threads: int = 0  # CPU threads; 0 = all cores
    data_dir: str | None = None
    out_dir: str = "runs/default"
    progress: bool = field(default_factory=lambda: sys.stdout.isatty())


def config_from_dict(values: dict[str, Any]) -> Config:
    """A Config from a checkpoint's saved recipe; keys this version does not know are an error, not ignored."""
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"the saved recipe has settings this version does not know: {', '.join(unknown)}")
    return Config(**{**values, "widths": tuple(values.get("widths", Config.widths))})
