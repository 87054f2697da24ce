"""`mnist-edge serve`: serves the exported model over gRPC until SIGTERM or SIGINT."""
from __future__ import annotations

import argparse
import asyncio
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mnist_edge.contract import FP32_FILE, INT8_FILE, MANIFEST_FILE
from mnist_edge.serve import logs
from mnist_edge.serve.bundle import load_card
from mnist_edge.serve.errors import ServerFailed, StartupError
from mnist_edge.serve.model import DEFAULT_THREADS, OnnxModel, resolve_provider
from mnist_edge.serve.server import ServerConfig, serve
from mnist_edge.serve.workers import MAX_WORKERS_PER_CORE, check_workers, serve_workers

MODEL_FOR_PROVIDER = {"cpu": INT8_FILE, "cuda": FP32_FILE}  # no CUDA kernels for int8 operators
DEFAULTS = ServerConfig()


def at_least(kind: type, minimum: float) -> Callable[[str], Any]:
    """An argparse type: a `kind` number no smaller than `minimum`."""
    def parse(text: str) -> Any:
        value = kind(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {text}")
        return value
    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mnist-edge serve", description="Serve the exported model over gRPC.")
    p.add_argument("--model", type=Path, help=f"ONNX model with {MANIFEST_FILE} beside it (default: the bundle "
                   f"installed with mnist-edge, {INT8_FILE}, or {FP32_FILE} on CUDA)")
    p.add_argument("--host", default=DEFAULTS.host, help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=DEFAULTS.port,
                   help="gRPC port, 0 picks a free one (default: %(default)s)")
    p.add_argument("--metrics-port", type=int, default=DEFAULTS.metrics_port,
                   help="Prometheus /metrics HTTP port, 0 picks a free one (default: %(default)s)")
    p.add_argument("--metrics-host", default=DEFAULTS.metrics_host,
                   help="address the /metrics listener binds; 0.0.0.0 or :: lets other machines scrape it "
                   "(default: %(default)s)")
    p.add_argument("--model-name", default=DEFAULTS.model_name, help="model name in the v2 API (default: %(default)s)")
    p.add_argument("--provider", choices=["auto", "cpu", "cuda"], default="auto",
                   help="ONNX Runtime execution provider; auto picks CUDA when present (default: %(default)s)")
    p.add_argument("--threads", type=at_least(int, 0), default=DEFAULT_THREADS,
                   help="ONNX Runtime intra-op threads per model run, 0 = one per core (default: %(default)s)")
    p.add_argument("--no-batching", dest="batching", action="store_false", help="one model run per request")
    p.add_argument("--max-batch", type=at_least(int, 1), default=DEFAULTS.max_batch,
                   help="most images in one coalesced run (default: %(default)s)")
    p.add_argument("--max-batch-delay-ms", type=at_least(float, 0), default=DEFAULTS.max_batch_delay_ms,
                   help="longest wait for a batch to fill once the queue is drained (default: %(default)s)")
    p.add_argument("--max-images", type=at_least(int, 1), default=DEFAULTS.max_images,
                   help="most images in one request (default: %(default)s)")
    p.add_argument("--max-queue", type=at_least(int, 1), default=DEFAULTS.max_queue,
                   help="most images waiting for the model; requests beyond get RESOURCE_EXHAUSTED, though one "
                   "request always gets into an empty queue (default: %(default)s)")
    p.add_argument("--max-message-mb", type=at_least(float, 0.1), default=DEFAULTS.max_message_mb,
                   help="largest gRPC message in either direction (default: %(default)s)")
    p.add_argument("--grace", type=at_least(float, 0), default=DEFAULTS.grace_s,
                   help="seconds in-flight calls get to finish at shutdown (default: %(default)s)")
    p.add_argument("--tls-cert", type=Path, help="PEM certificate chain: serve TLS")
    p.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    p.add_argument("--tls-client-ca", type=Path,
                   help="PEM CA bundle: require client certificates it signed (mutual TLS)")
    p.add_argument("--log-requests", action="store_true", help="log one line per call")
    p.add_argument("--workers", type=at_least(int, 1), default=DEFAULTS.workers,
                   help="server processes sharing the port (SO_REUSEPORT), each with its own model session, under "
                   "a supervisor that serves /metrics for all of them; Linux, CPU only (on CUDA they would take "
                   f"turns on the one GPU), at most {MAX_WORKERS_PER_CORE} per core (default: %(default)s)")
    return p


def default_model(provider: str) -> Path:
    """The bundle installed with the package (mnist_edge.models: the repository's models/ in a checkout)."""
    import mnist_edge.models

    model = Path(next(iter(mnist_edge.models.__path__))) / MODEL_FOR_PROVIDER[provider]
    if not model.is_file():
        raise StartupError(f"no --model given and this install has no {model}; pass --model PATH")
    return model


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None) or (args.tls_client_ca and not args.tls_cert):
        parser().error("--tls-cert and --tls-key go together, and --tls-client-ca needs them")
    logs.configure()
    config = ServerConfig(
        host=args.host, port=args.port, metrics_port=args.metrics_port, metrics_host=args.metrics_host,
        model_name=args.model_name, max_queue=args.max_queue,
        batching=args.batching, max_batch=args.max_batch, max_batch_delay_ms=args.max_batch_delay_ms,
        max_images=args.max_images, max_message_mb=args.max_message_mb, grace_s=args.grace,
        tls_cert=args.tls_cert, tls_key=args.tls_key, tls_client_ca=args.tls_client_ca, log_requests=args.log_requests,
        workers=args.workers,
    )
    try:
        provider = resolve_provider(args.provider)
        check_workers(config.workers, provider)
        card = load_card(args.model or default_model(provider))
        load_model = functools.partial(OnnxModel, card.path, provider, args.threads)
        if config.workers == 1:
            asyncio.run(serve(card, load_model(), config))
        else:
            serve_workers(card, load_model, config)
    except StartupError as error:
        print(f"mnist-edge serve: {error}", file=sys.stderr)
        return 2
    except ServerFailed as error:
        print(f"mnist-edge serve: {error}", file=sys.stderr)
        return 1
    return 0
