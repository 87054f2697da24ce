"""The serving benchmark's comparison peer: the model served the way a KServe user would serve it, a custom
`kserve.Model` running the ONNX file in ONNX Runtime behind KServe's `ModelServer` (v2 gRPC and REST).

It needs the `kserve` package, which the benchmark installs into a virtual environment of its own:

    .venv-kserve/bin/python benchmarks/serving/kserve_peer.py --model models/mnist_int8.onnx \
        --grpc-port 8081 --http-port 8080

It is a comparison, not part of the product: no input checks beyond KServe's own.
"""
from __future__ import annotations

import argparse

import kserve
import onnxruntime as ort
import uvicorn
from grpc.aio import _server as aio_server

LOOPBACK = "127.0.0.1"


class OnnxClassifier(kserve.Model):
    """The model's `image` tensor in, its `logits` out; by default with mnist-edge's ONNX Runtime settings (one
    intra-op thread, no spinning), so that the comparison is of the servers, not of the runtime's settings."""

    def __init__(self, name: str, path: str, threads: int) -> None:
        super().__init__(name)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.ready = True

    def predict(self, payload: kserve.InferRequest, headers: dict | None = None) -> kserve.InferResponse:
        logits = self.session.run(["logits"], {"image": payload.inputs[0].as_numpy()})[0]
        output = kserve.InferOutput(name="logits", shape=list(logits.shape), datatype="FP32")
        output.set_data_from_numpy(logits, binary_data=True)
        return kserve.InferResponse(response_id=payload.id, model_name=self.name, infer_outputs=[output])


def listen_on_loopback_only() -> None:
    """KServe binds every interface and has no option for it; the benchmark's servers stay on loopback."""
    add_insecure_port = aio_server.Server.add_insecure_port
    aio_server.Server.add_insecure_port = lambda self, address: add_insecure_port(
        self, address.replace("[::]", LOOPBACK, 1)
    )

    class LoopbackConfig(uvicorn.Config):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **{**kwargs, "host": LOOPBACK})

    uvicorn.Config = LoopbackConfig  # what KServe's REST server builds its config with


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="the ONNX file")
    p.add_argument("--name", default="mnist", help="model name in the v2 API (default: %(default)s)")
    p.add_argument("--grpc-port", type=int, required=True)
    p.add_argument("--http-port", type=int, required=True, help="KServe always serves REST too")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default: %(default)s)")
    args, _ = p.parse_known_args()  # KServe parses the command line itself as well
    listen_on_loopback_only()
    model = OnnxClassifier(args.name, args.model, args.threads)
    kserve.ModelServer(http_port=args.http_port, grpc_port=args.grpc_port, enable_latency_logging=False).start([model])


if __name__ == "__main__":
    main()
