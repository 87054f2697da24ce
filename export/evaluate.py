"""Runs the models on MNIST images: PyTorch against fp32 ONNX (parity), and ONNX Runtime on the test set."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from mnist_edge.contract import INPUT_NAME
from mnist_edge.export.errors import CheckFailed

PARITY_IMAGES = 1000
PARITY_TOLERANCE = 1e-4  # max absolute logit difference between PyTorch and the fp32 ONNX model


def onnx_logits(model_path: Path, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Logits from ONNX Runtime on the CPU (.onnx or .ort file), in batches that stay in the CPU's caches."""
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {INPUT_NAME: x[i:i + batch_size]})[0]
                           for i in range(0, len(x), batch_size)])


@torch.no_grad()
def torch_logits(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    return model.eval()(torch.from_numpy(x)).numpy()


def check_parity(model: torch.nn.Module, fp32_path: Path, x: np.ndarray) -> float:
    """Compares PyTorch and the fp32 ONNX file on x; returns the max absolute logit difference."""
    expected, actual = torch_logits(model, x), onnx_logits(fp32_path, x)
    diff = float(np.abs(expected - actual).max())
    mismatches = int((expected.argmax(1) != actual.argmax(1)).sum())
    if mismatches or diff > PARITY_TOLERANCE:
        raise CheckFailed(f"the fp32 ONNX model disagrees with PyTorch on {len(x)} test images "
                          f"({mismatches} different predictions, max logit difference {diff:.2e}, "
                          f"allowed {PARITY_TOLERANCE:.0e}).")
    return diff


def percent(hits: np.ndarray) -> float:
    """Mean of a boolean array in percent, rounded to the resolution of a 10,000-image test set."""
    return round(100 * float(np.mean(hits)), 2)


@dataclass
class Evaluation:
    labels: np.ndarray
    fp32: np.ndarray  # predicted classes
    int8: np.ndarray
    parity_max_diff: float

    @property
    def fp32_accuracy(self) -> float:
        return percent(self.fp32 == self.labels)

    @property
    def int8_accuracy(self) -> float:
        return percent(self.int8 == self.labels)

    @property
    def agreement(self) -> float:
        return percent(self.fp32 == self.int8)
