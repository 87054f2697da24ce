"""PyTorch to fp32 ONNX, with the contract's names, a dynamic batch and BatchNorm folded into the convolutions."""
from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch

from export.errors import CheckFailed

OPSET = 17
INPUT, OUTPUT = "image", "logits"


def export_fp32(model: torch.nn.Module, path: Path) -> None:
    """Writes the model (in eval mode) as one self-contained .onnx file, checked and with shapes inferred.

    The TorchScript exporter folds each eval-mode BatchNorm into the Conv before it; the check below holds it to that.
    """
    example = torch.zeros(1, 1, 28, 28)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated, but it keeps GlobalAveragePool, which the quantizer turns into
        # int8; the dynamo exporter lowers it to a ReduceMean that stays in float.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, (example,), str(path), dynamo=False, opset_version=OPSET, do_constant_folding=True,
            input_names=[INPUT], output_names=[OUTPUT], dynamic_axes={INPUT: {0: "N"}, OUTPUT: {0: "N"}},
        )
    model_proto = onnx.shape_inference.infer_shapes(onnx.load(path), check_type=True, strict_mode=True)
    onnx.checker.check_model(model_proto, full_check=True)
    if any(node.op_type == "BatchNormalization" for node in model_proto.graph.node):
        raise CheckFailed("the exported fp32 graph still holds a BatchNormalization node: it was not folded.")
    onnx.save(model_proto, path)
