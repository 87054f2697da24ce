"""The training recipe and where it runs: one dataclass, its defaults the project's default recipe."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from typing import Any

from mnist_edge.train.errors import ConfigError

Widths = tuple[tuple[int, ...], ...]  # output channels of each convolution, stage by stage

# How the 28x28 image enters the first stage:
#   "s2d":  space-to-depth, exact and weightless: each 2x2 block of pixels becomes 4 channels of a 14x14 image
#           (nn.PixelUnshuffle), so the first convolution has 4 input channels, which ONNX Runtime's int8 kernels
#           take, and the first stage runs on a quarter of the pixels.
#   "conv": the first stage convolves the full 28x28 image with one input channel (the first layout).
STEMS = ("s2d", "conv")
# The first layout's widths (stem "conv"), which checkpoints from before the stem option hold.
FIRST_LAYOUT_WIDTHS: Widths = ((8, 8), (16, 16), (16, 16))


def stage_widths(widths) -> Widths:
    """Widths as stages; a flat tuple (checkpoints of the first layout) is read as stages of two."""
    widths = tuple(widths)
    if all(isinstance(width, int) for width in widths):
        return tuple(tuple(widths[i : i + 2]) for i in range(0, len(widths), 2))
    return tuple(tuple(int(width) for width in stage) for stage in widths)


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
    widths: Widths = ((16, 16, 16), (16, 14))  # per stage: train.model.MnistNet
    stem: str = "s2d"  # STEMS
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
    if "stem" not in values:  # a checkpoint from before the stem option: the first layout
        values = {"widths": FIRST_LAYOUT_WIDTHS, **values, "stem": "conv"}
    return Config(**{**values, "widths": stage_widths(values.get("widths", Config.widths))})
