"""The requests each case sends, serialized once up front, and the labels read back from the answers.

The load generator sends and receives bytes, so that it spends its CPU on calls rather than on protobuf.
"""
from __future__ import annotations

import numpy as np

from mnist_edge.contract import IMAGE_SHAPE, INPUT_NAME, NUM_CLASSES, to_model_input
from mnist_edge.serve._v2 import grpc_predict_v2_pb2 as v2
from mnist_edge.v1 import classifier_pb2 as pb

from .cases import PREDICT, Case

DISTINCT_REQUESTS = 64  # requests cycle through this many different images
MODEL_NAME = "mnist"  # what every server here calls the model in the v2 API


def request_images(case: Case, images: np.ndarray) -> list[np.ndarray]:
    """The uint8 images of `DISTINCT_REQUESTS` requests of `case.images` images each, cycling through `images`."""
    return [np.take(images, range(start, start + case.images), axis=0, mode="wrap")
            for start in range(0, DISTINCT_REQUESTS * case.images, case.images)]


def serialized(case: Case, images: np.ndarray) -> bytes:
    """One request of `case.method` carrying `images`: raw uint8 for Predict, the model's float32 input for v2."""
    if case.method == PREDICT:
        return pb.PredictRequest(images=[image.tobytes() for image in images]).SerializeToString()
    tensor = v2.ModelInferRequest.InferInputTensor(name=INPUT_NAME, datatype="FP32", shape=[len(images), *IMAGE_SHAPE])
    message = v2.ModelInferRequest(model_name=MODEL_NAME, inputs=[tensor],
                                   raw_input_contents=[to_model_input(images).astype("<f4").tobytes()])
    return message.SerializeToString()


def labels_in(case: Case, answer: bytes) -> list[int]:
    """The predicted labels in a serialized answer to `case.method`."""
    if case.method == PREDICT:
        return [p.label for p in pb.PredictResponse.FromString(answer).predictions]
    logits = np.frombuffer(v2.ModelInferResponse.FromString(answer).raw_output_contents[0], "<f4")
    return logits.reshape(-1, NUM_CLASSES).argmax(axis=1).tolist()
