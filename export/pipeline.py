"""The export, step by step: fp32 ONNX, parity, int8, test accuracy, the gate, then the bundle."""
from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from export.bundle import check_destination, install
from export.c_header import write_c_header
from export.checkpoint import load_checkpoint
from export.errors import BadInput, CheckFailed
from export.evaluate import PARITY_IMAGES, Evaluation, check_parity, onnx_logits, to_model_input
from export.manifest import build_manifest, write_manifest
from export.onnx_export import export_fp32
from export.ort_format import convert_to_ort
from export.quantize import NodeCensus, QuantSettings, census, quantize
from export.report import write_report
from export.rewrite import fold_normalization, widen_for_int8
from train.data import DataError, load_split
from train.model import parameter_count

FP32, INT8, HEADER = "mnist_fp32.onnx", "mnist_int8.onnx", "mnist_int8.h"
CALIBRATION_SEED = 0


@dataclass
class Options:
    checkpoint: Path
    out: Path
    min_accuracy: float = 99.4
    settings: QuantSettings = field(default_factory=QuantSettings)
    data_dir: Path | None = None


@dataclass
class Outcome:
    results: Evaluation
    nodes: NodeCensus
    manifest: dict


def load_mnist(data_dir: Path | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(training images, test images, test labels) as numpy arrays; images uint8 [N, 28, 28]."""
    if data_dir is not None and not Path(data_dir).is_dir():
        raise BadInput(f"--data-dir {data_dir} is not a folder.")
    try:
        train_images, _ = load_split(train=True, data_dir=data_dir)
        test_images, test_labels = load_split(train=False, data_dir=data_dir)
    except DataError as err:
        raise BadInput(str(err)) from None
    return train_images.numpy(), test_images.numpy(), test_labels.numpy()


def calibration_set(train_images: np.ndarray, count: int) -> np.ndarray:
    """A fixed random sample of training images (never test images), so exports are reproducible."""
    if not 1 <= count <= len(train_images):
        raise BadInput(f"--calibration-images must be between 1 and {len(train_images):,}, not {count}.")
    chosen = np.random.default_rng(CALIBRATION_SEED).choice(len(train_images), count, replace=False)
    return to_model_input(train_images[chosen])


def run_export(options: Options, say: Callable[[str], None] = print) -> Outcome:
    """Raises BadInput or CheckFailed; options.out is replaced only after every check has passed."""
    check_destination(options.out)
    run = load_checkpoint(options.checkpoint)
    train_images, test_images, test_labels = load_mnist(options.data_dir)
    calibration = calibration_set(train_images, options.settings.calibration_images)
    x_test = to_model_input(test_images)
    with tempfile.TemporaryDirectory(prefix="mnist-edge-export-") as scratch:
        work, int8_source = Path(scratch, "bundle"), Path(scratch, "int8_source.onnx")
        work.mkdir()
        export_fp32(fold_normalization(run.model), work / FP32)
        parity = check_parity(run.model, work / FP32, x_test[:PARITY_IMAGES])
        say(f"fp32 ONNX matches PyTorch on {PARITY_IMAGES:,} test images (max logit difference {parity:.1e})")

        export_fp32(fold_normalization(widen_for_int8(run.model)), int8_source)
        check_parity(run.model, int8_source, x_test[:PARITY_IMAGES])
        nodes = census(quantize(int8_source, work / INT8, calibration, options.settings))
        if len(nodes.float_convolutions()) != 1:  # the first one stays in float by design (quantize.float_prefix)
            names = ", ".join(nodes.float_convolutions())
            raise CheckFailed(f"quantization left other Conv nodes than the first in float: {names}.")
        results = Evaluation(test_labels, onnx_logits(work / FP32, x_test).argmax(1),
                             onnx_logits(work / INT8, x_test).argmax(1), parity)
        if results.int8_accuracy < options.min_accuracy:
            raise CheckFailed(f"int8 test accuracy {results.int8_accuracy:.2f} % is below the required "
                              f"{options.min_accuracy:.2f} % (fp32 {results.fp32_accuracy:.2f} %), so {options.out} "
                              "was left as it was.")

        ort_path = convert_to_ort(work / INT8, work)
        if not np.array_equal(onnx_logits(ort_path, x_test).argmax(1), results.int8):
            raise CheckFailed(f"{ort_path.name} predicts differently from {INT8} on the test set.")
        write_c_header(ort_path, work / HEADER)
        write_report(work, test_images, results, nodes, options.settings)
        manifest = build_manifest(work, INT8, run, results, nodes, options.settings, parameter_count(run.model))
        write_manifest(work, manifest)
        install(work, options.out)
    return Outcome(results, nodes, manifest)
