"""The floor under every Python server here: a grpc.aio server that answers each call with a fixed message and
runs no model, so that its CPU time per call is what gRPC in Python costs before any work.

A script the benchmark starts in a subprocess:

    .venv/bin/python benchmarks/serving/floor_server.py PORT
"""
from __future__ import annotations

import argparse
import asyncio

import grpc

from mnist_edge.serve._v2 import grpc_predict_v2_pb2 as v2
from mnist_edge.v1 import classifier_pb2 as pb


def fixed_reply(service: str, method: str, reply: bytes) -> grpc.GenericRpcHandler:
    """A handler that answers every call with the same serialized message (bytes in, bytes out: no parsing)."""
    return grpc.method_handlers_generic_handler(
        service, {method: grpc.unary_unary_rpc_method_handler(lambda request, context: reply)})


async def serve(port: int) -> None:
    """Answers every Predict with one fixed prediction, and ModelReady (the benchmark's readiness poll) with ready."""
    answer = pb.PredictResponse(predictions=[pb.Prediction(label=0, confidence=1.0, probabilities=[1.0] + [0.0] * 9)])
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([
        fixed_reply("mnist_edge.v1.Classifier", "Predict", answer.SerializeToString()),
        fixed_reply("inference.GRPCInferenceService", "ModelReady",
                    v2.ModelReadyResponse(ready=True).SerializeToString()),
    ])
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    asyncio.run(serve(parser.parse_args().port))
