"""Assembles the grpc.aio server (both APIs, health, reflection, metrics, TLS) and runs it until a signal."""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from serve._proto.inference import grpc_predict_v2_pb2, grpc_predict_v2_pb2_grpc
from serve._proto.mnist_edge.v1 import classifier_pb2, classifier_pb2_grpc
from serve.batcher import DirectRunner, DynamicBatcher, Runner
from serve.bundle import ModelCard
from serve.classifier_service import ClassifierService
from serve.errors import StartupError
from serve.inference_service import InferenceService
from serve.logs import log
from serve.metrics import Metrics
from serve.model import OnnxModel
from serve.observe import ObservingInterceptor

SERVICE_NAMES = (
    classifier_pb2.DESCRIPTOR.services_by_name["Classifier"].full_name,
    grpc_predict_v2_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
    health.SERVICE_NAME,
)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "[::]"
    port: int = 50051
    metrics_port: int = 9464
    model_name: str = "mnist"
    batching: bool = True
    max_batch: int = 64
    max_batch_delay_ms: float = 1.0
    max_images: int = 256
    max_message_mb: float = 4.0
    grace_s: float = 10.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    log_requests: bool = False


async def serve(card: ModelCard, model: OnnxModel, config: ServerConfig) -> None:
    """Serves until SIGTERM or SIGINT, then drains in-flight calls for up to `grace_s` seconds."""
    metrics = Metrics(config.max_batch)
    metrics.model.info({"name": card.name, "version": card.version, "sha256": card.sha256,
                        "file": card.path.name, "providers": ",".join(model.providers)})
    stop_signal = catch_stop_signals()
    runner = make_runner(model, metrics, config)
    interceptor = ObservingInterceptor(metrics, config.log_requests)
    server, health_servicer = await build_server(
        card, model, runner, interceptor, config, is_ready=lambda: not stop_signal.done()
    )
    port = bind(server, config)
    await server.start()
    try:
        httpd, metrics_port = metrics.serve_http(config.host.strip("[]"), config.metrics_port)
    except OSError as error:
        await server.stop(None)
        raise StartupError(f"cannot serve metrics on port {config.metrics_port}: {error.strerror}") from None
    log("start", port=port, metrics_port=metrics_port, model=str(card.path), name=card.name, version=card.version,
        providers=model.providers, nodes_by_provider=model.nodes_by_provider, batching=config.batching,
        max_batch=config.max_batch, max_batch_delay_ms=config.max_batch_delay_ms, tls=config.tls_cert is not None,
        mutual_tls=config.tls_client_ca is not None, pid=os.getpid())
    received = await stop_signal
    await health_servicer.enter_graceful_shutdown()  # every service reports NOT_SERVING
    log("draining", signal=received.name, grace_s=config.grace_s)
    await drain(server, interceptor, config.grace_s)
    await runner.close()
    httpd.shutdown()
    log("stop", signal=received.name)


async def drain(server: grpc.aio.Server, interceptor: ObservingInterceptor, grace_s: float) -> None:
    """Stops taking calls and lets unary calls finish within `grace_s`; streams (health Watch) are then ended
    at once rather than holding the server for the whole grace period."""
    stopping = asyncio.create_task(server.stop(grace_s))  # cancels whatever is left when grace_s is up
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(interceptor.wait_idle(), grace_s)
    await server.stop(None)
    await stopping


def make_runner(model: OnnxModel, metrics: Metrics, config: ServerConfig) -> Runner:
    if config.batching:
        return DynamicBatcher(model.run, metrics, config.max_batch, config.max_batch_delay_ms / 1000)
    return DirectRunner(model.run, metrics, workers=os.cpu_count() or 1)


async def build_server(
    card: ModelCard, model: OnnxModel, runner: Runner, interceptor: ObservingInterceptor, config: ServerConfig,
    is_ready: Callable[[], bool],
) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    message_bytes = int(config.max_message_mb * 1024 * 1024)
    server = grpc.aio.server(
        interceptors=[interceptor],
        options=[("grpc.max_receive_message_length", message_bytes), ("grpc.max_send_message_length", message_bytes)],
    )
    classifier_pb2_grpc.add_ClassifierServicer_to_server(
        ClassifierService(card, model, runner, config.max_images), server
    )
    grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceService(card, config.model_name, model.providers, runner, config.max_images, is_ready), server
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((*SERVICE_NAMES, reflection.SERVICE_NAME), server)
    for name in ("", *SERVICE_NAMES):  # the model is loaded, so everything serves from the start
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, health_servicer


def bind(server: grpc.aio.Server, config: ServerConfig) -> int:
    """Listens on host:port (plain or TLS); returns the port, which the OS picks when port is 0."""
    address = f"{config.host}:{config.port}"
    try:
        if config.tls_cert is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, tls_credentials(config))
    except RuntimeError as error:
        raise StartupError(f"cannot listen on {address} ({error})") from None
    if port == 0:
        raise StartupError(f"cannot listen on {address}")
    return port


def tls_credentials(config: ServerConfig) -> grpc.ServerCredentials:
    try:
        key, cert = config.tls_key.read_bytes(), config.tls_cert.read_bytes()
        client_ca = config.tls_client_ca.read_bytes() if config.tls_client_ca else None
    except OSError as error:
        raise StartupError(f"cannot read TLS file {error.filename}: {error.strerror}") from None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def catch_stop_signals() -> asyncio.Future[signal.Signals]:
    """A future that SIGTERM or SIGINT completes with the signal (instead of killing the process)."""
    loop = asyncio.get_running_loop()
    received: asyncio.Future[signal.Signals] = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda s=signum: received.done() or received.set_result(s))
    return received
