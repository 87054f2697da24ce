"""The benchmark matrix: which servers answer which requests, and at what concurrency."""
from __future__ import annotations

from dataclasses import dataclass

PREDICT = "/mnist_edge.v1.Classifier/Predict"
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
CONCURRENCY = (1, 4, 16, 64)  # calls in flight; the targets are read at 64


@dataclass(frozen=True)
class Case:
    name: str
    server: str  # "mnist-edge", "kserve", "floor" or "in-process"
    images: int  # per request
    method: str = PREDICT
    server_args: tuple[str, ...] = ()
    # The callers share one connection, or each has its own: --workers needs several, as the kernel spreads
    # connections, not calls, over the workers.
    connection_per_caller: bool = False


CEILING_1 = Case("in-process ORT, batch 1", "in-process", 1)
CEILING_256 = Case("in-process ORT, batch 256", "in-process", 256)
PREDICT_1 = Case("Predict 1 image, batching", "mnist-edge", 1)
PREDICT_1_DIRECT = Case("Predict 1 image, no batching", "mnist-edge", 1, server_args=("--no-batching",))
PREDICT_256 = Case("Predict 256 images", "mnist-edge", 256)
V2_1 = Case("v2 ModelInfer 1 image, batching", "mnist-edge", 1, MODEL_INFER)
WORKERS_1 = Case("Predict 1 image, 1 worker, a connection per caller", "mnist-edge", 1, connection_per_caller=True)
WORKERS_2 = Case("Predict 1 image, 2 workers, a connection per caller", "mnist-edge", 1,
                 server_args=("--workers", "2"), connection_per_caller=True)
KSERVE_1 = Case("KServe peer, v2 ModelInfer 1 image", "kserve", 1, MODEL_INFER)
# What a grpc.aio server costs per call before it does any work: the floor under every Python server here.
FLOOR_1 = Case("grpc.aio floor: fixed answer, no model", "floor", 1)
CASES = (CEILING_1, CEILING_256, PREDICT_1, PREDICT_1_DIRECT, PREDICT_256, V2_1, WORKERS_1, WORKERS_2, KSERVE_1,
         FLOOR_1)
