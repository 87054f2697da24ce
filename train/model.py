"""The classifier: a small all-convolutional network built only from operators that export and quantize
cleanly (Conv, BatchNorm, ReLU, MaxPool, GlobalAveragePool)."""
from __future__ import annotations

import torch
from torch import nn

from mnist_edge.contract import MNIST_MEAN, MNIST_STD


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
    """Three stages of 3x3 convolutions (28x28, 14x14, 7x7), global average pooling and a 1x1 classifier.

    The export widens narrow layers for ONNX Runtime's int8 kernels (export/rewrite.py says by which rule); the
    parameter count stays under 10,000.
    """

    def __init__(self, widths: tuple[int, ...] = (8, 8, 16, 16, 16, 16), num_classes: int = 10) -> None:
        super().__init__()
        w1, w2, w3, w4, w5, w6 = widths
        self.widths = widths
        self.features = nn.Sequential(
            Normalize(),
            conv_bn_relu(1, w1),
            conv_bn_relu(w1, w2),
            nn.MaxPool2d(2),  # 28 -> 14
            conv_bn_relu(w2, w3),
            conv_bn_relu(w3, w4),
            nn.MaxPool2d(2),  # 14 -> 7
            conv_bn_relu(w4, w5),
            conv_bn_relu(w5, w6),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Conv2d(w6, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x)).flatten(1)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def receptive_field(model: nn.Module) -> int:
    """Receptive field in input pixels of one unit before global pooling (standard r/j recurrence)."""
    field, jump = 1, 1
    for layer in model.modules():
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            k = layer.kernel_size if isinstance(layer.kernel_size, int) else layer.kernel_size[0]
            s = layer.stride if isinstance(layer.stride, int) else layer.stride[0]
            field += (k - 1) * jump
            jump *= s
    return field
