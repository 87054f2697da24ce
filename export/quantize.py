"""Static int8 quantization with ONNX Runtime, calibrated on training images, and a census of the result."""
from __future__ import annotations

import contextlib
import io
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)
from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

from mnist_edge.contract import INPUT_NAME
from mnist_edge.export.compact import compact
from mnist_edge.export.errors import CheckFailed

METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
           "percentile": CalibrationMethod.Percentile}
FORMATS = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}
# ONNX Runtime's fast int8 convolution (MLAS "ConvSym": indirect, requantization fused) takes only convolutions
# with at least 16 output channels and input channels in multiples of 4; narrower ones fall back to im2col and
# a GEMM that runs slower than the float NCHWc kernels.
INT8_KERNEL_MIN_CHANNELS = 16
INT8_KERNEL_CHANNEL_MULTIPLE = 4
# The pixels (0.0 to 1.0) enter the first int8 convolution as 0..127, not 0..255. Without VNNI, ONNX Runtime's u8s8
# kernels add pairs of uint8 x int8 products in 16 bits, which saturate at 32,767: two full-scale pixels times
# weights near 127 reach 2 x 255 x 127 = 64,770, and MNIST strokes are runs of full-scale pixels; at 7 bits the
# most is 2 x 127 x 127 = 32,258. Measured on an AVX2 CPU (space-to-depth network, seed 0): the int8 model agreed
# with fp32 on 99.750 % of 20,000 training images outside the calibration set with 8-bit pixels, 99.960 % with
# 7-bit ones, and 99.965 % with the first convolution left in float, which ran slower (batch-256 throughput 1.23x
# fp32's, against 1.45x).
PIXEL_LEVELS = 127
# quantize_static would run entropy calibration with 128 histogram bins into 128 quantized bins: that leaves one
# candidate threshold, the full range, so "entropy" would silently equal MinMax. Calibrating here with a finer
# histogram gives the KL-divergence search thresholds to choose from.
CALIBRATOR_OPTIONS = {"entropy": {"num_bins": 512, "num_quantized_bins": 128}}


@dataclass(frozen=True)
class QuantSettings:
    method: str = "minmax"  # a key of METHODS
    # QOperator (QLinearConv ...) runs the same integer kernels as QDQ once ONNX Runtime has fused the latter, and
    # its file is about 15 % smaller: no QuantizeLinear/DequantizeLinear pair around every tensor.
    format: str = "qoperator"  # a key of FORMATS
    per_channel: bool = True
    calibration_images: int = 1000
    # uint8 activations and int8 weights: the pairing ONNX Runtime's x86 and ARM CPU kernels run fastest.
    activation_type: QuantType = QuantType.QUInt8
    weight_type: QuantType = QuantType.QInt8


class BatchReader(CalibrationDataReader):
    """Feeds calibration images to the quantizer in batches (the batch dimension of the model is dynamic)."""

    def __init__(self, images: np.ndarray, batch_size: int = 100) -> None:
        self.batches = iter(np.array_split(images, max(1, len(images) // batch_size)))

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def int8_kernel_takes(in_channels: int) -> bool:
    """Whether a convolution reading this many channels suits ONNX Runtime's int8 kernels."""
    return in_channels % INT8_KERNEL_CHANNEL_MULTIPLE == 0


def first_conv(model: onnx.ModelProto) -> onnx.NodeProto:
    return next(node for node in model.graph.node if node.op_type == "Conv")  # graphs are topologically sorted


def float_prefix(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that stay in float: with a one-channel first convolution (the "conv" stem), which suits
    no int8 kernel, the nodes from the input up to it and the Relu that follows it; otherwise none."""
    conv = first_conv(model)
    weight = next(tensor for tensor in model.graph.initializer if tensor.name == conv.input[1])
    if int8_kernel_takes(weight.dims[1]):
        return []
    names = [node.name for node in model.graph.node[: list(model.graph.node).index(conv) + 1]]
    after = next((node for node in model.graph.node if conv.output[0] in node.input), None)
    return names + [after.name] if after is not None and after.op_type == "Relu" else names


def pixel_overrides(model: onnx.ModelProto) -> dict[str, list[dict[str, np.ndarray]]]:
    """The quantization of the first convolution's input, the 0-1 pixels, at PIXEL_LEVELS: fixed by the input
    contract rather than calibrated (for a first convolution that runs in int8)."""
    scale, zero_point = np.array(1 / PIXEL_LEVELS, np.float32), np.array(0, np.uint8)
    return {first_conv(model).input[0]: [{"scale": scale, "zero_point": zero_point}]}


def quantize(fp32_path: Path, int8_path: Path, calibration: np.ndarray, settings: QuantSettings) -> onnx.ModelProto:
    """Quantizes fp32_path into int8_path (compacted, see export.compact) but for its float_prefix; raises
    CheckFailed if ONNX Runtime's quantizer left any other convolution in float.

    calibration: float32 [N, 1, 28, 28] training images.
    """
    with tempfile.TemporaryDirectory(prefix="mnist-edge-quant-") as scratch:
        prepared, ranges = Path(scratch) / "prepared.onnx", Path(scratch) / "ranges.json"
        quant_pre_process(str(fp32_path), str(prepared))
        source = onnx.load(prepared)
        excluded = float_prefix(source)
        with contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators narrate their progress
            calibrator = create_calibrator(prepared, augmented_model_path=str(Path(scratch) / "augmented.onnx"),
                                           calibrate_method=METHODS[settings.method],
                                           extra_options=CALIBRATOR_OPTIONS.get(settings.method, {}))
            calibrator.collect_data(BatchReader(calibration))
            save_tensors_data(calibrator.compute_data(), ranges)
        quantize_static(
            str(prepared), str(int8_path), calibration_data_reader=None, calibration_cache_path=ranges,
            quant_format=FORMATS[settings.format], per_channel=settings.per_channel,
            activation_type=settings.activation_type, weight_type=settings.weight_type,
            calibrate_method=METHODS[settings.method], nodes_to_exclude=excluded,
            extra_options={"TensorQuantOverrides": {} if excluded else pixel_overrides(source)},
        )
    model = onnx.load(int8_path)
    stray = [name for name in census(model).float_convolutions() if name not in excluded]
    if stray:
        raise CheckFailed(f"quantization left convolutions in float that should run in int8: {', '.join(stray)}.")
    model = compact(store_float_conv_weights_in_int8(model))
    onnx.save(model, int8_path)
    return model


def store_float_conv_weights_in_int8(model: onnx.ModelProto) -> onnx.ModelProto:
    """Weight-only quantization of the convolutions left in float: int8 weights (per output channel, symmetric)
    that a DequantizeLinear turns back into float when the model runs.

    Besides being 4 times smaller, a weight computed at run time keeps ONNX Runtime from rewriting the convolution
    into its blocked NCHWc layout, whose output would need reordering before QuantizeLinear: that reorder cost
    more than the NCHWc kernel saved (batch-256 throughput about 1.15x instead of 1.4x that of fp32, one thread).
    """
    graph = model.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    for index, conv in reversed(list(enumerate(graph.node))):  # inserting before a node keeps earlier indices
        weight = initializers.get(conv.input[1]) if conv.op_type == "Conv" else None
        if weight is None or weight.data_type != onnx.TensorProto.FLOAT:
            continue
        w = onnx.numpy_helper.to_array(weight)
        peak = np.abs(w).reshape(len(w), -1).max(axis=1)
        scale = np.where(peak > 0, peak / 127, 1).astype(np.float32)  # an all-zero filter keeps scale 1
        quantized = np.round(w / scale.reshape(-1, *[1] * (w.ndim - 1))).astype(np.int8)
        names = [f"{weight.name}_{suffix}" for suffix in ("int8", "scale", "zero_point", "dequantized")]
        graph.initializer.remove(weight)
        graph.initializer.extend([onnx.numpy_helper.from_array(quantized, names[0]),
                                  onnx.numpy_helper.from_array(scale, names[1]),
                                  onnx.numpy_helper.from_array(np.zeros(len(w), np.int8), names[2])])
        graph.node.insert(index, onnx.helper.make_node("DequantizeLinear", names[:3], names[3:], axis=0))
        conv.input[1] = names[3]
    return model


@dataclass
class NodeCensus:
    int8: list[onnx.NodeProto]
    fp32: list[onnx.NodeProto]
    weight_only: list[str] = field(default_factory=list)  # float nodes whose weights are stored in int8

    def int8_summary(self) -> str:
        """E.g. 'Conv x7, MaxPool x2, GlobalAveragePool'."""
        counts = Counter(node.op_type.removeprefix("QLinear") for node in self.int8)
        return ", ".join(f"{op} x{n}" if n > 1 else op for op, n in counts.items())

    def float_convolutions(self) -> list[str]:
        return [node.name for node in self.fp32 if node.op_type == "Conv"]


def census(model: onnx.ModelProto) -> NodeCensus:
    """Sorts the compute nodes (all but QuantizeLinear, DequantizeLinear and Constant) into int8 and float ones.

    A node runs in int8 when it computes on 8-bit tensors (QOperator format: QLinear* ops and the ops that
    pass their 8-bit output on), or when all its inputs (weights included) are dequantized and all its outputs
    quantized again (QDQ format: ONNX Runtime fuses DequantizeLinear -> op -> QuantizeLinear into an integer
    kernel).
    """
    graph = model.graph
    made_by = {out: node.op_type for node in graph.node for out in node.output}
    read_by: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            read_by.setdefault(name, []).append(node.op_type)
    eight_bit: set[str] = set()
    result = NodeCensus([], [])
    for node in graph.node:  # ONNX graphs are topologically sorted
        if node.op_type == "QuantizeLinear":
            eight_bit.update(node.output)
        if node.op_type in ("QuantizeLinear", "DequantizeLinear", "Constant"):
            continue
        if node.op_type.startswith("QLinear") or node.input[0] in eight_bit:
            eight_bit.update(node.output)
            result.int8.append(node)
        elif all(made_by.get(name) == "DequantizeLinear" for name in node.input if name) and all(
                read_by.get(out) and set(read_by[out]) == {"QuantizeLinear"} for out in node.output):
            result.int8.append(node)
        else:
            result.fp32.append(node)
            if any(made_by.get(name) == "DequantizeLinear" for name in node.input):
                result.weight_only.append(node.name)
    return result

