"""manifest.json: what a reader of the bundle needs to trust and use it, without opening the models."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import onnx
import onnxruntime
import torch

from export.checkpoint import TrainingRun
from export.evaluate import Evaluation
from export.onnx_export import INPUT, OPSET, OUTPUT
from export.quantize import FORMATS, METHODS, NodeCensus, QuantSettings
from train.data import sha256_of

NAME = "mnist"
MANIFEST = "manifest.json"


def file_entries(folder: Path) -> dict[str, dict]:
    """sha256 and size of every file in the folder but the manifest itself."""
    return {path.name: {"sha256": sha256_of(path), "bytes": path.stat().st_size}
            for path in sorted(folder.iterdir()) if path.name != MANIFEST}


def build_manifest(folder: Path, int8_name: str, run: TrainingRun, results: Evaluation, nodes: NodeCensus,
                   settings: QuantSettings, parameters: int, now: datetime | None = None) -> dict:
    now = now or datetime.now(UTC)
    files = file_entries(folder)
    return {
        "format": 1,
        "name": NAME,
        "version": f"{now:%Y%m%d}-{files[int8_name]['sha256'][:8]}",
        "created": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "files": files,
        "input": {"name": INPUT, "dtype": "float32", "shape": ["N", 1, 28, 28],
                  "pixel_scale": "uint8 / 255, 0.0 to 1.0", "polarity": "white digit on black background",
                  "normalization": "inside the graph (mean 0.1307, std 0.3081), folded into the first Conv"},
        "output": {"name": OUTPUT, "dtype": "float32", "shape": ["N", 10],
                   "meaning": "unnormalized class scores; softmax gives probabilities"},
        "labels": [str(digit) for digit in range(10)],
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
        "training": {"seed": run.seed, "epochs": run.epochs, "final": run.final},
    }


def write_manifest(folder: Path, manifest: dict) -> Path:
    path = folder / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path
