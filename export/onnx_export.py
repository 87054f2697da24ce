"""PyTorch to fp32 ONNX, with the contract's names, a dynamic batch, BatchNorm folded into the convolutions and
short internal names (export.compact)."""
from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import onnxruntime as ort
import torch

from mnist_edge.contract import IMAGE_SHAPE, INPUT_NAME, OUTPUT_NAME
from mnist_edge.export.compact import compact
from mnist_edge.export.errors import CheckFailed

OPSET = 17


def fold_constants(path: Path) -> None:
    """Rewrites the file with ONNX Runtime's basic optimizations (constant folding, no hardware-specific layouts).

    The TorchScript exporter computes a Pad's pads at run time from constants (through a reversing Slice that its
    own constant folding skips); folded, the Pad takes one constant initializer.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(path)
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_fp32(model: torch.nn.Module, path: Path) -> None:
    """Writes the model (in eval mode) as one self-contained .onnx file, checked (types and shapes included).

    The TorchScript exporter folds each eval-mode BatchNorm into the Conv before it; the check below holds it to that.
    """
    example = torch.zeros(1, *IMAGE_SHAPE)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated, but it keeps GlobalAveragePool, which the quantizer turns into
        # int8; the dynamo exporter lowers it to a ReduceMean that stays in float.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", "Constant folding - Only steps=1", UserWarning)  # see fold_constants
        torch.onnx.export(
            model, (example,), str(path), dynamo=False, opset_version=OPSET, do_constant_folding=True,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}},
        )
    fold_constants(path)
    model_proto = onnx.shape_inference.infer_shapes(onnx.load(path), check_type=True, strict_mode=True)
    onnx.checker.check_model(model_proto, full_check=True)
    if any(node.op_type == "BatchNormalization" for node in model_proto.graph.node):
        raise CheckFailed("the exported fp32 graph still holds a BatchNormalization node: it was not folded.")
    onnx.save(compact(model_proto), path)
