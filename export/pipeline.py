"""The export, step by step: fp32 ONNX, parity, int8, test accuracy, the gate, then the bundle."""
from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnist_edge.contract import FP32_FILE as FP32
from mnist_edge.contract import HEADER_FILE as HEADER
from mnist_edge.contract import INT8_FILE as INT8
from mnist_edge.contract import MIN_ACCURACY, to_model_input
from mnist_edge.export.bundle import check_destination, install
from mnist_edge.export.c_header import write_c_header
from mnist_edge.export.errors import BadInput, CheckFailed
from mnist_edge.export.evaluate import PARITY_IMAGES, Evaluation, check_parity, onnx_logits
from mnist_edge.export.manifest import build_manifest, write_manifest
from mnist_edge.export.onnx_export import export_fp32
from mnist_edge.export.ort_format import convert_to_ort
from mnist_edge.export.quantize import NodeCensus, QuantSettings, census, quantize
from mnist_edge.export.report import write_report
from mnist_edge.export.rewrite import fold_normalization, widen_for_int8
from mnist_edge.export.triton import write_triton_repository
from mnist_edge.train.checkpoint import load_model
from mnist_edge.train.data import load_split
from mnist_edge.train.errors import TrainError
from mnist_edge.train.model import parameter_count

CALIBRATION_SEED = 0


@dataclass
class Options:
    checkpoint: Path
    out: Path
    min_accuracy: float = MIN_ACCURACY
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
    except TrainError as err:
        raise BadInput(f"{err}.") from None
    return train_images.numpy(), test_images.numpy(), test_labels.numpy()


def calibration_set(train_images: np.ndarray, count: int) -> np.ndarray:
    """A fixed random sample of training images (never test images), so exports are reproducible."""
    if not 1 <= count <= len(train_images):
        raise BadInput(f"--calibration-images must be between 1 and {len(train_images):,}, not {count}.")
    chosen = np.random.default_rng(CALIBRATION_SEED).choice(len(train_images), count, replace=False)
    return to_model_input(train_images[chosen])


def run_export(
    options: Options, say: Callable[[str], None] = print, on_installed: Callable[[], None] | None = None
) -> Outcome:
    """Raises BadInput or CheckFailed; options.out is replaced only after every check has passed, and then
    `on_installed` is called (before the scratch folder is removed)."""
    check_destination(options.out)
    try:
        model, run = load_model(options.checkpoint)
    except TrainError as err:
        raise BadInput(f"{err}.") from None
    train_images, test_images, test_labels = load_mnist(options.data_dir)
    calibration = calibration_set(train_images, options.settings.calibration_images)
    x_test = to_model_input(test_images)
    with tempfile.TemporaryDirectory(prefix="mnist-edge-export-") as scratch:
        work, int8_source = Path(scratch, "bundle"), Path(scratch, "int8_source.onnx")
        work.mkdir()
        export_fp32(fold_normalization(model), work / FP32)
        parity = check_parity(model, work / FP32, x_test[:PARITY_IMAGES])
        say(f"fp32 ONNX matches PyTorch on {PARITY_IMAGES:,} test images (max logit difference {parity:.1e})")

        export_fp32(fold_normalization(widen_for_int8(model)), int8_source)
        check_parity(model, int8_source, x_test[:PARITY_IMAGES])
        nodes = census(quantize(int8_source, work / INT8, calibration, options.settings))
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
        write_triton_repository(work / INT8, work)  # after the report: its file table lists the device files
        manifest = build_manifest(work, INT8, run, results, nodes, options.settings, parameter_count(model))
        write_manifest(work, manifest)
        install(work, options.out)
        if on_installed is not None:
            on_installed()
    return Outcome(results, nodes, manifest)
