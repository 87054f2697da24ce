"""The Open Inference Protocol (KServe v2) service, inference.GRPCInferenceService, for the one model."""
from __future__ import annotations

from collections.abc import Callable
from importlib import metadata

import grpc

from mnist_edge.contract import IMAGE_SHAPE, INPUT_NAME, NUM_CLASSES, OUTPUT_NAME
from mnist_edge.serve import rpc
from mnist_edge.serve._v2 import grpc_predict_v2_pb2 as pb
from mnist_edge.serve._v2 import grpc_predict_v2_pb2_grpc as pb_grpc
from mnist_edge.serve.batcher import Runner
from mnist_edge.serve.bundle import ModelCard
from mnist_edge.serve.errors import ModelNotFound
from mnist_edge.serve.validation import V2_DATATYPE, tensor_from_v2

SERVER_NAME = "mnist-edge"
PLATFORM = "onnxruntime_onnx"


def server_version() -> str:
    try:
        return metadata.version(SERVER_NAME)
    except metadata.PackageNotFoundError:  # run from a source checkout that was never installed
        return "unknown"


Context = grpc.aio.ServicerContext


def tensor_metadata(name: str, shape: list[int]) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(name=name, datatype=V2_DATATYPE, shape=shape)


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(
        self, card: ModelCard, model_name: str, providers: list[str], runner: Runner, max_images: int,
        is_ready: Callable[[], bool],
    ) -> None:
        self._name, self._version = model_name, card.version
        self._runner, self._max_images, self._is_ready = runner, max_images, is_ready
        # The protocol has no field for execution providers; they are listed as extensions of this server.
        self._server_metadata = pb.ServerMetadataResponse(
            name=SERVER_NAME, version=server_version(), extensions=[f"execution_provider:{p}" for p in providers]
        )
        self._model_metadata = pb.ModelMetadataResponse(
            name=model_name,
            versions=[card.version],
            platform=PLATFORM,
            inputs=[tensor_metadata(INPUT_NAME, [-1, *IMAGE_SHAPE])],
            outputs=[tensor_metadata(OUTPUT_NAME, [-1, NUM_CLASSES])],
        )

    def _serves(self, name: str, version: str) -> bool:
        return name == self._name and version in ("", self._version)

    def _check_model(self, name: str, version: str) -> None:
        if name != self._name:
            raise ModelNotFound(f"unknown model {name!r}; this server serves {self._name!r}")
        if not self._serves(name, version):
            raise ModelNotFound(f"model {name!r} has no version {version!r}; it serves {self._version!r}")

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Context) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Context) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._is_ready())

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Context) -> pb.ModelReadyResponse:
        # Like other v2 servers, an unknown model is simply not ready.
        return pb.ModelReadyResponse(ready=self._is_ready() and self._serves(request.name, request.version))

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Context) -> pb.ServerMetadataResponse:
        return self._server_metadata

    @rpc.refusals_as_status
    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Context) -> pb.ModelMetadataResponse:
        self._check_model(request.name, request.version)
        return self._model_metadata

    @rpc.refusals_as_status
    async def ModelInfer(self, request: pb.ModelInferRequest, context: Context) -> pb.ModelInferResponse:
        self._check_model(request.model_name, request.model_version)
        images = tensor_from_v2(request, self._max_images)
        logits = await rpc.infer(self._runner, images, context)
        output = pb.ModelInferResponse.InferOutputTensor(name=OUTPUT_NAME, datatype=V2_DATATYPE, shape=logits.shape)
        # Always raw little-endian bytes: the form Triton answers in, and the one tritonclient reads.
        return pb.ModelInferResponse(
            model_name=self._name, model_version=self._version, id=request.id, outputs=[output],
            raw_output_contents=[logits.astype("<f4").tobytes()],
        )
