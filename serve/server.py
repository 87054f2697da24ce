"""Assembles the grpc.aio server (both APIs, health, reflection, metrics, TLS) and runs it until a signal."""
from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from mnist_edge.serve._v2 import grpc_predict_v2_pb2, grpc_predict_v2_pb2_grpc
from mnist_edge.serve.batcher import DEFAULT_MAX_QUEUE, DirectRunner, DynamicBatcher, Runner
from mnist_edge.serve.bundle import ModelCard
from mnist_edge.serve.classifier_service import ClassifierService
from mnist_edge.serve.errors import StartupError
from mnist_edge.serve.inference_service import InferenceService
from mnist_edge.serve.logs import log
from mnist_edge.serve.metrics import Metrics, MetricsHTTPServer, metrics_server
from mnist_edge.serve.model import OnnxModel
from mnist_edge.serve.observe import ObservingInterceptor
from mnist_edge.v1 import classifier_pb2, classifier_pb2_grpc

SERVICE_NAMES = (
    classifier_pb2.DESCRIPTOR.services_by_name["Classifier"].full_name,
    grpc_predict_v2_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
    health.SERVICE_NAME,
)
STREAM_FAREWELL_S = 0.1  # at shutdown, how long streams (health Watch) get to send their last message
SHUTDOWN_QUIET_S = 0.05  # at shutdown, calls are taken until none has arrived for this long ...
SHUTDOWN_SETTLE_S = 1.0  # ... or for this long at the most (never longer than --grace)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "[::]"
    port: int = 50051
    metrics_port: int = 9464
    metrics_host: str = "127.0.0.1"  # /metrics tells anyone who can reach it about the traffic: loopback unless asked
    model_name: str = "mnist"
    batching: bool = True
    max_batch: int = 64
    max_batch_delay_ms: float = 1.0
    max_images: int = 256
    max_queue: int = DEFAULT_MAX_QUEUE
    max_message_mb: float = 4.0
    grace_s: float = 10.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    log_requests: bool = False
    workers: int = 1  # processes sharing the port (workers.py); this one is one of them when above 1


async def serve(
    card: ModelCard, model: OnnxModel, config: ServerConfig, on_ready: Callable[[], None] = lambda: None,
) -> None:
    """Serves until SIGTERM or SIGINT, then drains in-flight calls for up to `grace_s` seconds; calls `on_ready`
    once it listens. As one of `config.workers` workers it shares the port its supervisor reserved, and leaves
    /metrics to the supervisor, which also logs "start" for all (this process logs "ready")."""
    check_tls_files(config)
    metrics = Metrics(config.max_batch)
    metrics.model.labels(card.name, card.version, card.sha256, card.path.name, ",".join(model.providers)).set(1)
    stop_signal = catch_stop_signals()
    runner = make_runner(model, metrics, config)
    interceptor = ObservingInterceptor(metrics, config.log_requests)
    server, health_servicer = await build_server(
        card, model, runner, interceptor, config, is_ready=lambda: not stop_signal.done()
    )
    port = bind(server, config)
    await server.start()
    details = dict(
        model=str(card.path), name=card.name, version=card.version, providers=model.providers,
        nodes_by_provider=model.nodes_by_provider, batching=config.batching, max_batch=config.max_batch,
        max_batch_delay_ms=config.max_batch_delay_ms, max_queue=config.max_queue, tls=config.tls_cert is not None,
        mutual_tls=config.tls_client_ca is not None, pid=os.getpid(),
    )
    httpd = None
    if config.workers > 1:
        log("ready", port=port, **details)
    else:
        try:
            httpd = metrics_listener(metrics.registry, config)
        except StartupError:
            await server.stop(None)
            raise
        httpd.start()
        log("start", port=port, metrics_port=httpd.server_port, metrics_host=config.metrics_host, **details)
    on_ready()
    received = await stop_signal
    await health_servicer.enter_graceful_shutdown()  # every service reports NOT_SERVING
    log("draining", signal=received.name, grace_s=config.grace_s)
    await drain(server, interceptor, config.grace_s)
    await runner.close()
    if httpd is not None:
        httpd.stop()
    log("stop", signal=received.name)


def metrics_listener(registry: CollectorRegistry, config: ServerConfig) -> MetricsHTTPServer:
    """The /metrics server of `registry` on --metrics-host and --metrics-port, listening but not yet answering."""
    try:
        return metrics_server(registry, config.metrics_host.strip("[]"), config.metrics_port)
    except OSError as error:
        reason = error.strerror or str(error)
        raise StartupError(f"cannot serve metrics on {config.metrics_host} port {config.metrics_port}: {reason}") \
            from None


async def drain(server: grpc.aio.Server, interceptor: ObservingInterceptor, grace_s: float) -> None:
    """Stops taking calls and lets every call the server has taken finish within `grace_s`; streams (health
    Watch) are ended at once rather than holding the server for the whole grace period.

    Calls that have reached gRPC but not yet the Python side when gRPC stops taking calls are cancelled by gRPC
    itself, so the server first goes on taking calls until none has arrived for SHUTDOWN_QUIET_S (or for
    SHUTDOWN_SETTLE_S at the most): calls sent just before the signal are answered, not CANCELLED. gRPC then
    says when the last call taken has ended (waiting instead until no call was inside a handler, then cancelling
    the rest, cancelled calls that had arrived but not yet reached their handler).
    """
    await interceptor.wait_quiet(SHUTDOWN_QUIET_S, min(SHUTDOWN_SETTLE_S, grace_s))
    stopping = asyncio.create_task(server.stop(grace_s))  # cancels whatever is left when grace_s is up
    await asyncio.sleep(min(STREAM_FAREWELL_S, grace_s))  # health watchers send their NOT_SERVING meanwhile
    interceptor.end_streams()
    await stopping


def make_runner(model: OnnxModel, metrics: Metrics, config: ServerConfig) -> Runner:
    if config.batching:
        return DynamicBatcher(model.run, metrics, config.max_batch, config.max_batch_delay_ms / 1000, config.max_queue)
    return DirectRunner(model.run, metrics, workers=os.cpu_count() or 1, max_queue=config.max_queue)


async def build_server(
    card: ModelCard, model: OnnxModel, runner: Runner, interceptor: ObservingInterceptor, config: ServerConfig,
    is_ready: Callable[[], bool],
) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    message_bytes = int(config.max_message_mb * 1024 * 1024)
    server = grpc.aio.server(
        interceptors=[interceptor],
        options=[
            ("grpc.max_receive_message_length", message_bytes),
            ("grpc.max_send_message_length", message_bytes),
            # On by default, where a second server on the same port would share it silently: only workers share.
            ("grpc.so_reuseport", int(config.workers > 1)),
        ],
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
    """Listens on host:port (plain or TLS); returns the port, which the OS picks when port is 0. Workers skip the
    check for a port in use: their supervisor made it, and reserved the port for them (reserve_port)."""
    address = f"{config.host}:{config.port}"
    probe = config.port != 0 and config.workers == 1
    if probe and (problem := bind_problem(config.host, config.port)) is not None and "in use" in problem:
        raise StartupError(f"cannot listen on {address}: {problem}")  # before gRPC logs a line of its own about it
    try:
        if config.tls_cert is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, tls_credentials(config))
    except RuntimeError:
        port = 0
    if port == 0:
        raise StartupError(f"cannot listen on {address}: {bind_problem(config.host, config.port) or 'gRPC refused it'}")
    return port


def bind_problem(host: str, port: int) -> str | None:
    """Why host:port cannot be listened on, found by binding it with a socket as gRPC does (SO_REUSEADDR, no
    SO_REUSEPORT); None when it can."""
    try:
        bound_socket(host, port, socket.SO_REUSEADDR).close()
    except OSError as error:
        return port_problem(error, port)
    return None


def reserve_port(host: str, port: int) -> socket.socket:
    """For --workers: a socket bound to host:port (0: a free port) that only SO_REUSEPORT sockets of this user
    can share, as the workers' gRPC listeners are. Not listening, it gets no connections; kept open, it keeps
    the port from another server, whose check (bind_problem) finds it in use. The port gets that check first:
    the reservation alone would share it with another server's listener that set SO_REUSEPORT too."""
    problem = bind_problem(host, port) if port != 0 else None
    if problem is None:
        try:
            return bound_socket(host, port, socket.SO_REUSEPORT)
        except OSError as error:
            problem = port_problem(error, port)
    raise StartupError(f"cannot listen on {host}:{port}: {problem}")


def bound_socket(host: str, port: int, reuse: int) -> socket.socket:
    """A TCP socket bound to host:port as gRPC binds it (both families on ::), with the socket option `reuse`."""
    family, _, _, _, address = socket.getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, reuse, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # gRPC listens on both families
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def port_problem(error: OSError, port: int) -> str:
    if error.errno == errno.EADDRINUSE:
        return f"port {port} is in use by another process (is a server running already?)"
    return error.strerror or str(error)


def check_tls_files(config: ServerConfig) -> None:
    """Parses the TLS files with the ssl module before gRPC sees them (gRPC would only fail to listen), and says
    which file is wrong: the certificate, the key, a key that is not the certificate's, or the client CA."""
    if config.tls_cert is None:
        return
    cert, key = _pem_text(config.tls_cert), _pem_text(config.tls_key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if "-----BEGIN CERTIFICATE-----" not in cert:
        raise StartupError(f"the TLS certificate {config.tls_cert} holds no PEM certificate (BEGIN CERTIFICATE)")
    try:
        context.load_verify_locations(cadata=cert)
    except ssl.SSLError:
        raise StartupError(f"the TLS certificate {config.tls_cert} is not a valid PEM certificate") from None
    if "PRIVATE KEY-----" not in key:
        raise StartupError(f"the TLS key {config.tls_key} holds no PEM private key (BEGIN PRIVATE KEY)")
    if "ENCRYPTED" in key:
        raise StartupError(f"the TLS key {config.tls_key} is encrypted; the server needs it unencrypted")
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key, password=_no_password)
    except ssl.SSLError as error:
        if error.reason == "KEY_VALUES_MISMATCH":
            raise StartupError(
                f"the TLS key {config.tls_key} is not the private key of the certificate {config.tls_cert}"
            ) from None
        raise StartupError(f"the TLS key {config.tls_key} is not a valid PEM private key") from None
    except OSError as error:
        raise StartupError(f"cannot read TLS file {error.filename}: {error.strerror}") from None
    if config.tls_client_ca is not None:
        client_ca = _pem_text(config.tls_client_ca)
        try:
            if "-----BEGIN CERTIFICATE-----" not in client_ca:
                raise ssl.SSLError
            context.load_verify_locations(cadata=client_ca)
        except ssl.SSLError:
            raise StartupError(
                f"the TLS client CA {config.tls_client_ca} holds no valid PEM certificate"
            ) from None


def _pem_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("ascii", errors="replace")
    except OSError as error:
        raise StartupError(f"cannot read TLS file {path}: {error.strerror}") from None


def _no_password() -> bytes:
    raise ssl.SSLError("encrypted")  # never prompts on the terminal for an encrypted key


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
    """A future that SIGTERM or SIGINT completes with the signal (instead of killing the process). The signals
    are unblocked, as workers.py blocks them across its forks: one that came meanwhile is taken now."""
    loop = asyncio.get_running_loop()
    received: asyncio.Future[signal.Signals] = loop.create_future()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, lambda s=signum: received.done() or received.set_result(s))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    return received
