"""manifest.json: what a reader of the bundle needs to trust and use it, without opening the models."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import onnx
import onnxruntime
import torch

from mnist_edge.contract import LABELS, MANIFEST_FILE, MANIFEST_FORMAT, MODEL_NAME, input_spec, output_spec, sha256_of
from mnist_edge.export.evaluate import Evaluation
from mnist_edge.export.onnx_export import OPSET
from mnist_edge.export.quantize import FORMATS, METHODS, NodeCensus, QuantSettings
from mnist_edge.train.checkpoint import Checkpoint


def file_entries(folder: Path) -> dict[str, dict]:
    """sha256 and size of every file in the folder and its subfolders but the manifest itself, by '/'-separated
    path relative to the folder (a top-level file's key is its name)."""
    paths = (path for path in sorted(folder.rglob("*")) if path.is_file() and path != folder / MANIFEST_FILE)
    return {path.relative_to(folder).as_posix(): {"sha256": sha256_of(path), "bytes": path.stat().st_size}
            for path in paths}


def build_manifest(folder: Path, int8_name: str, run: Checkpoint, results: Evaluation, nodes: NodeCensus,
                   settings: QuantSettings, parameters: int, now: datetime | None = None) -> dict:
    now = now or datetime.now(UTC)
    files = file_entries(folder)
    return {
        "format": MANIFEST_FORMAT,
        "name": MODEL_NAME,
        "version": f"{now:%Y%m%d}-{files[int8_name]['sha256'][:8]}",
        "created": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "files": files,
        "input": input_spec(),
        "output": output_spec(),
        "labels": list(LABELS),
        "parameters": parameters,
        "accuracy": {"test_images": len(results.labels), "fp32": results.fp32_accuracy,
                     "int8": results.int8_accuracy, "agreement": results.agreement, "unit": "percent",
                     "parity_max_logit_diff": results.parity_max_diff},
        "quantization": {"method": "static", "format": FORMATS[settings.format].name,
                         "per_channel": settings.per_channel,
                         "activation_type": settings.activation_type.name, "weight_type": settings.weight_type.name,
                         "calibration_method": METHODS[settings.method].name,
                         "calibration_images": settings.calibration_images,
                         "calibration_source": "MNIST training set",
                         "int8_nodes": len(nodes.int8), "float_nodes": [node.name for node in nodes.fp32],
                         "int8_weights_float_compute": nodes.weight_only},
        "opset": OPSET,
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
        "training": {"seed": run.config.seed, "epochs": len(run.history), "final": run.final},
    }


def write_manifest(folder: Path, manifest: dict) -> Path:
    path = folder / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path
