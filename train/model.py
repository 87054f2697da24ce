"""The classifier: a small all-convolutional network built only from operators that export and quantize
cleanly (Conv, BatchNorm, ReLU, MaxPool, GlobalAveragePool)."""
from __future__ import annotations

import torch
from torch import nn

from mnist_edge.contract import MNIST_MEAN, MNIST_STD
from mnist_edge.train.config import STEMS, Config, Widths, stage_widths


class Normalize(nn.Module):
    """Standardizes 0-1 pixels inside the network, so exported graphs take plain pixel/255 input."""

    def __init__(self, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> None:
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    # bias=False: the BatchNorm shift makes a conv bias redundant.
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class MnistNet(nn.Module):
    """Stages of 3x3 convolutions separated by 2x2 max pooling, global average pooling and a 1x1 classifier.

    The default: space-to-depth (28x28x1 to 14x14x4, exact and weightless), convolutions of 16, 16, 16 at 14x14
    and 16, 14 at 7x7 (9,810 parameters, 1.23 M multiply-adds per image). No layer runs at 28x28 and every width
    is 16 (the 14 keeps the count under 10,000), which ONNX Runtime's int8 kernels and oneDNN's channels-last
    training kernels suit. `stem="conv", widths=((8, 8), (16, 16), (16, 16))` is the first layout (9,042
    parameters): its 28x28 stage trains 3.4x slower on an AVX2 CPU, and its int8 model is slower than its fp32
    one there (README, Training). The export widens narrow layers for ONNX Runtime's int8 kernels
    (export/rewrite.py says by which rule).
    """

    def __init__(self, widths: Widths = Config.widths, num_classes: int = 10, stem: str = Config.stem) -> None:
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"unknown stem {stem!r}: choose one of {', '.join(STEMS)}")
        self.widths, self.stem = stage_widths(widths), stem
        layers: list[nn.Module] = [Normalize()]
        if stem == "s2d":
            layers.append(nn.PixelUnshuffle(2))  # 28x28x1 -> 14x14x4
        c_in = 4 if stem == "s2d" else 1
        for index, stage in enumerate(self.widths):
            if index:
                layers.append(nn.MaxPool2d(2))
            for width in stage:
                layers.append(conv_bn_relu(c_in, width))
                c_in = width
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Conv2d(c_in, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x)).flatten(1)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def receptive_field(model: nn.Module) -> int:
    """Receptive field in input pixels of one unit before global pooling (standard r/j recurrence)."""
    field, jump = 1, 1
    for layer in model.modules():
        if isinstance(layer, nn.PixelUnshuffle):  # a 2x2 block becomes one position: like a 2x2, stride-2 window
            field += (layer.downscale_factor - 1) * jump
            jump *= layer.downscale_factor
        elif isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            k = layer.kernel_size if isinstance(layer.kernel_size, int) else layer.kernel_size[0]
            s = layer.stride if isinstance(layer.stride, int) else layer.stride[0]
            field += (k - 1) * jump
            jump *= s
    return field
