"""The mnist_edge.v1.Classifier service: Predict and GetModelInfo."""
from __future__ import annotations

import grpc
import numpy as np

from mnist_edge.serve import rpc
from mnist_edge.serve.batcher import Runner
from mnist_edge.serve.bundle import ModelCard
from mnist_edge.serve.errors import StartupError
from mnist_edge.serve.model import OnnxModel
from mnist_edge.serve.validation import images_from_bytes
from mnist_edge.v1 import classifier_pb2 as pb
from mnist_edge.v1 import classifier_pb2_grpc as pb_grpc


class ClassifierService(pb_grpc.ClassifierServicer):
    def __init__(self, card: ModelCard, model: OnnxModel, runner: Runner, max_images: int) -> None:
        self._version, self._runner, self._max_images = card.version, runner, max_images
        self._info = model_info(card, model)

    @rpc.refusals_as_status
    async def Predict(self, request: pb.PredictRequest, context: grpc.aio.ServicerContext) -> pb.PredictResponse:
        images = images_from_bytes(request.images, self._max_images)
        probabilities = softmax(await rpc.infer(self._runner, images, context))
        labels = probabilities.argmax(axis=1).tolist()
        return pb.PredictResponse(
            predictions=[
                pb.Prediction(label=label, confidence=p[label], probabilities=p)
                for label, p in zip(labels, probabilities.tolist(), strict=True)
            ],
            model_version=self._version,
        )

    async def GetModelInfo(self, request: pb.GetModelInfoRequest, context: grpc.aio.ServicerContext) -> pb.ModelInfo:
        return self._info


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))  # the shift keeps exp from overflowing
    return shifted / shifted.sum(axis=1, keepdims=True)


def model_info(card: ModelCard, model: OnnxModel) -> pb.ModelInfo:
    try:
        return _model_info(card, model)
    except (KeyError, TypeError, ValueError) as error:
        raise StartupError(f"the manifest beside {card.path} has a malformed entry ({error!r})") from None


def _model_info(card: ModelCard, model: OnnxModel) -> pb.ModelInfo:
    manifest = card.manifest
    accuracy = manifest["accuracy"]
    return pb.ModelInfo(
        name=card.name,
        version=card.version,
        sha256=card.sha256,
        model_file=card.path.name,
        input=tensor_spec(manifest["input"]),
        output=tensor_spec(manifest["output"]),
        labels=manifest["labels"],
        parameters=manifest["parameters"],
        accuracy=pb.Accuracy(
            test_images=accuracy["test_images"], fp32_percent=accuracy["fp32"],
            int8_percent=accuracy["int8"], agreement_percent=accuracy["agreement"],
        ),
        execution_providers=model.providers,
        nodes_by_provider=model.nodes_by_provider,
    )


def tensor_spec(entry: dict) -> pb.TensorSpec:
    """A manifest tensor entry; symbolic dimensions ("N") become -1."""
    notes = {key: str(value) for key, value in entry.items() if key not in ("name", "dtype", "shape")}
    shape = [dim if isinstance(dim, int) else -1 for dim in entry["shape"]]
    return pb.TensorSpec(name=entry["name"], dtype=entry["dtype"], shape=shape, notes=notes)
