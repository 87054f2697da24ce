"""Static int8 quantization with ONNX Runtime, calibrated on training images, and a census of the result."""
from __future__ import annotations

import contextlib
import io
import tempfile
from collections import Counter
from dataclasses import dataclass
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

from export.onnx_export import INPUT

METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
           "percentile": CalibrationMethod.Percentile}
FORMATS = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}
# quantize_static would run entropy calibration with 128 histogram bins into 128 quantized bins: that leaves one
# candidate threshold, the full range, so "entropy" would silently equal MinMax. Calibrating here with a finer
# histogram gives the KL-divergence search thresholds to choose from.
CALIBRATOR_OPTIONS = {"entropy": {"num_bins": 512, "num_quantized_bins": 128}}


@dataclass(frozen=True)
class QuantSettings:
    method: str = "minmax"  # a key of METHODS
    format: str = "qdq"  # a key of FORMATS
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
        return None if batch is None else {INPUT: batch}


def quantize(fp32_path: Path, int8_path: Path, calibration: np.ndarray, settings: QuantSettings) -> onnx.ModelProto:
    """Quantizes fp32_path into int8_path; calibration: float32 [N, 1, 28, 28] training images."""
    with tempfile.TemporaryDirectory(prefix="mnist-edge-quant-") as scratch:
        prepared, ranges = Path(scratch) / "prepared.onnx", Path(scratch) / "ranges.json"
        quant_pre_process(str(fp32_path), str(prepared))
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
            calibrate_method=METHODS[settings.method],
        )
    return onnx.load(int8_path)


@dataclass
class NodeCensus:
    int8: list[onnx.NodeProto]
    fp32: list[onnx.NodeProto]

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
    return result

