"""A Triton model repository in the bundle, so that a cluster serves the same int8 model with KServe and Triton
under the same names as `mnist-edge serve`: one tritonclient code for both.

config.pbtxt is written as protobuf text without tritonclient (a dev dependency only); the tests parse it into
tritonclient's own ModelConfig message, which rejects any field or value Triton would not know.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from mnist_edge.contract import DTYPE, IMAGE_SHAPE, INPUT_NAME, MODEL_NAME, NUM_CLASSES, OUTPUT_NAME, TRITON_REPOSITORY

VERSION, MODEL_FILE, CONFIG_FILE = "1", "model.onnx", "config.pbtxt"  # Triton's layout and default file name
TRITON_TYPES = {"float32": "TYPE_FP32"}
# The images one request may carry, as `mnist-edge serve --max-images` allows by default: with max_batch_size > 0
# Triton adds the batch dimension itself (v2 shape [-1, 1, 28, 28]) and refuses larger requests, so both servers
# take the same requests. Triton's dynamic batcher then merges requests, waiting at most 1 ms as ours does.
MAX_BATCH_SIZE = 256
MAX_QUEUE_DELAY_US = 1000


def tensor(name: str, dims: tuple[int, ...]) -> str:
    return f'  {{ name: "{name}" data_type: {TRITON_TYPES[DTYPE]} dims: [ {", ".join(map(str, dims))} ] }}'


def config_text() -> str:
    """config.pbtxt: ONNX Runtime's backend (which runs the com.microsoft int8 operators) on CPU instances, one
    per replica: the int8 model is made for CPUs, and a cluster scales by replicas."""
    return "\n".join([
        f'name: "{MODEL_NAME}"',
        'platform: "onnxruntime_onnx"',
        f"max_batch_size: {MAX_BATCH_SIZE}",
        f"input [\n{tensor(INPUT_NAME, IMAGE_SHAPE)}\n]",
        f"output [\n{tensor(OUTPUT_NAME, (NUM_CLASSES,))}\n]",
        f"dynamic_batching {{ max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US} }}",
        "instance_group [ { kind: KIND_CPU count: 1 } ]",
        "",
    ])


def write_triton_repository(int8_model: Path, folder: Path) -> Path:
    """Writes folder/model_repository/mnist/ (config.pbtxt, 1/model.onnx: a byte copy of `int8_model`); returns
    the model's folder."""
    model = folder / TRITON_REPOSITORY / MODEL_NAME
    (model / VERSION).mkdir(parents=True)
    shutil.copyfile(int8_model, model / VERSION / MODEL_FILE)
    (model / CONFIG_FILE).write_text(config_text())
    return model
