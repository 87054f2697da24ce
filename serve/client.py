"""A small synchronous client of the Classifier API, used by `mnist-edge predict` and the tests."""
from __future__ import annotations

from collections.abc import Sequence

import grpc
import numpy as np

from mnist_edge.v1 import classifier_pb2 as pb
from mnist_edge.v1 import classifier_pb2_grpc as pb_grpc


class ClassifierClient:
    """Talks to a server at `target` ("host:port"); pass `root_certificates` for TLS, plus the client's own
    `private_key` and `certificate_chain` for mutual TLS. Errors surface as grpc.RpcError."""

    def __init__(
        self, target: str, *, timeout: float | None = 30.0, root_certificates: bytes | None = None,
        private_key: bytes | None = None, certificate_chain: bytes | None = None,
    ) -> None:
        if root_certificates is None:
            self._channel = grpc.insecure_channel(target)
        else:
            credentials = grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)
            self._channel = grpc.secure_channel(target, credentials)
        self._stub = pb_grpc.ClassifierStub(self._channel)
        self._timeout = timeout

    def predict(self, images: Sequence[bytes] | np.ndarray) -> pb.PredictResponse:
        """Classifies 784-byte images, or a uint8 array of shape [N, 28, 28] (or [N, 784])."""
        if isinstance(images, np.ndarray):
            images = [image.tobytes() for image in images.astype(np.uint8, copy=False).reshape(len(images), -1)]
        return self._stub.Predict(pb.PredictRequest(images=list(images)), timeout=self._timeout)

    def model_info(self) -> pb.ModelInfo:
        return self._stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=self._timeout)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> ClassifierClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
