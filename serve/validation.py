"""Turns request messages into the model's input tensor, or says exactly what is wrong with them."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mnist_edge.contract import IMAGE_SHAPE, INPUT_NAME, OUTPUT_NAME, PIXEL_MAX, PIXELS, to_model_input
from mnist_edge.serve._v2 import grpc_predict_v2_pb2 as v2
from mnist_edge.serve.errors import InvalidInput

V2_DATATYPE = "FP32"


def check_count(count: int, max_images: int) -> None:
    if count == 0:
        raise InvalidInput("the request has no images")
    if count > max_images:
        raise InvalidInput(f"the request has {count} images; this server takes at most {max_images} per request")


def images_from_bytes(images: Sequence[bytes], max_images: int) -> np.ndarray:
    """PredictRequest.images (784 uint8 pixels each) as float32 [N, 1, 28, 28] on the 0-1 scale."""
    check_count(len(images), max_images)
    for index, image in enumerate(images):
        if len(image) != PIXELS:
            raise InvalidInput(
                f"image {index} is {len(image)} bytes; each image must be {PIXELS} bytes (28x28 uint8 pixels)"
            )
    return to_model_input(np.frombuffer(b"".join(images), dtype=np.uint8).reshape(len(images), PIXELS))


def tensor_from_v2(request: v2.ModelInferRequest, max_images: int) -> np.ndarray:
    """The `image` tensor of a v2 ModelInferRequest, from raw_input_contents or typed contents."""
    if len(request.inputs) != 1:
        raise InvalidInput(f"the request has {len(request.inputs)} inputs; the model takes exactly one, {INPUT_NAME!r}")
    tensor = request.inputs[0]
    if tensor.name != INPUT_NAME:
        raise InvalidInput(f"unknown input {tensor.name!r}; the model's input is {INPUT_NAME!r}")
    if tensor.datatype != V2_DATATYPE:
        raise InvalidInput(f"input {INPUT_NAME!r} must be {V2_DATATYPE}, not {tensor.datatype!r}")
    shape = list(tensor.shape)
    if len(shape) != 1 + len(IMAGE_SHAPE) or tuple(shape[1:]) != IMAGE_SHAPE or shape[0] < 0:
        raise InvalidInput(f"input {INPUT_NAME!r} has shape {shape}; the model takes {['N', *IMAGE_SHAPE]}")
    check_count(shape[0], max_images)
    for output in request.outputs:
        if output.name != OUTPUT_NAME:
            raise InvalidInput(f"unknown output {output.name!r}; the model's output is {OUTPUT_NAME!r}")
    values = _values(request, shape[0] * PIXELS)
    if not np.isfinite(values).all():
        raise InvalidInput(f"input {INPUT_NAME!r} contains NaN or infinite values")
    if values.min() < 0.0 or values.max() > 1.0:
        raise InvalidInput(f"input {INPUT_NAME!r} has values outside 0.0 to 1.0 (pixels are uint8 / {PIXEL_MAX})")
    return values.reshape(shape)


def _values(request: v2.ModelInferRequest, count: int) -> np.ndarray:
    tensor = request.inputs[0]
    if not request.raw_input_contents:
        given = len(tensor.contents.fp32_contents)
        if given != count:
            raise InvalidInput(f"input {INPUT_NAME!r} has {given} fp32_contents values; its shape needs {count}")
        return np.array(tensor.contents.fp32_contents, dtype=np.float32)
    if tensor.HasField("contents"):
        raise InvalidInput(f"input {INPUT_NAME!r} has both contents and raw_input_contents; send one of them")
    if len(request.raw_input_contents) != 1:
        raise InvalidInput(f"the request has {len(request.raw_input_contents)} raw_input_contents for 1 input")
    raw = request.raw_input_contents[0]
    if len(raw) != count * 4:
        raise InvalidInput(
            f"input {INPUT_NAME!r} has {len(raw)} bytes of raw data; shape {[count // PIXELS, *IMAGE_SHAPE]} "
            f"of {V2_DATATYPE} needs {count * 4}"
        )
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)
