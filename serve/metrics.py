"""Prometheus metrics of the server, in a registry of their own, served as text over HTTP.

With `--workers N` the metrics are shared between processes (prometheus-client's multiprocess mode): every
worker writes its values to files in a folder, and the supervisor serves their sum (share_between_processes,
shared_registry).

The /metrics listener is bounded, unlike prometheus_client's start_http_server (a thread and a descriptor per
connection, for as long as the peer keeps it open): at most METRICS_MAX_CONNECTIONS connections at once, more are
answered 503 and closed at once, and a connection that sends nothing for METRICS_IDLE_TIMEOUT_S seconds is
closed. Idle or half-sent connections therefore cannot take the descriptors and threads the gRPC server needs.
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app, multiprocess, values

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
QUEUE_BUCKETS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5)
METRICS_MAX_CONNECTIONS = 16  # a scraper or two, and a person with curl, need far fewer
METRICS_IDLE_TIMEOUT_S = 5.0  # the longest a connection may stay silent (the server reads and writes with it)
BUSY_RESPONSE = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Metrics:
    def __init__(self, max_batch: int) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mnist_edge_requests", "gRPC calls by method and status code", ["method", "code"], registry=self.registry
        )
        self.latency = Histogram(
            "mnist_edge_request_duration_seconds", "time from a call's arrival to its answer", ["method"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.in_flight = Gauge("mnist_edge_in_flight_requests", "calls being answered now", registry=self.registry,
                               multiprocess_mode="livesum")  # with --workers N: the sum over the live workers
        self.batch_size = Histogram(
            "mnist_edge_batch_size_images", "images per ONNX Runtime run",
            buckets=_powers_of_two_up_to(max_batch), registry=self.registry,
        )
        self.queue_wait = Histogram(
            "mnist_edge_queue_wait_seconds", "time a request waited for its batch to form",
            buckets=QUEUE_BUCKETS, registry=self.registry,
        )
        # A gauge set to 1, not an Info, which multiprocess mode cannot share: the text exposition is the same.
        self.model = Gauge("mnist_edge_model_info", "the model being served",
                           ["name", "version", "sha256", "file", "providers"], registry=self.registry,
                           multiprocess_mode="livemax")


def share_between_processes(folder: Path) -> None:
    """Makes the metrics created from now on, here and in processes forked from here, write their values to files
    in `folder`, for shared_registry to sum. prometheus-client reads PROMETHEUS_MULTIPROC_DIR when it is
    imported, which the server is past once it knows --workers: its choice is made again here."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    values.ValueClass = values.get_value_class()


def shared_registry(folder: Path) -> CollectorRegistry:
    """A registry of the metrics every process that shares `folder` has written (counters and histograms summed,
    gauges by their multiprocess_mode)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(folder))
    return registry


def forget_process(pid: int, folder: Path) -> None:
    """Drops the live gauges (in-flight calls, model) of a process that has exited; its counts stay in the sums."""
    multiprocess.mark_process_dead(pid, str(folder))


def metrics_server(
    registry: CollectorRegistry, host: str, port: int, max_connections: int = METRICS_MAX_CONNECTIONS,
    idle_timeout_s: float = METRICS_IDLE_TIMEOUT_S,
) -> MetricsHTTPServer:
    """The /metrics HTTP server of `registry`, listening (port 0: a free one) but not answering until .start().
    Raises OSError when host:port cannot be listened on."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    server_class = type("MetricsHTTPServer", (MetricsHTTPServer,), {"address_family": family})
    handler_class = type("Handler", (QuietHandler,), {"timeout": idle_timeout_s})
    httpd = make_server(host, port, make_wsgi_app(registry), server_class, handler_class)
    httpd.limit_connections(max_connections)
    return httpd


class QuietHandler(WSGIRequestHandler):
    """Logs nothing; `timeout` (seconds) bounds every read and write on the connection."""

    def log_message(self, format: str, *args: object) -> None:
        pass


class MetricsHTTPServer(ThreadingMixIn, WSGIServer):
    """A thread per connection, at most `max_connections` at once; connections beyond are answered 503."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64  # the listen backlog: connections beyond the cap are accepted, answered and closed
    _slots: threading.BoundedSemaphore
    _thread: threading.Thread | None = None

    def limit_connections(self, max_connections: int) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)

    def start(self) -> None:
        """Answers in a thread of its own."""
        self._thread = threading.Thread(target=self.serve_forever, name="metrics-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops answering and closes the listener."""
        if self._thread is not None:  # shutdown() would wait forever for a serve_forever that never ran
            self.shutdown()
        self.server_close()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def process_request(self, request: socket.socket, client_address: object) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.setblocking(False)
                request.send(BUSY_RESPONSE)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)  # starts the connection's thread
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: socket.socket, client_address: object) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: socket.socket, client_address: object) -> None:
        """A connection that timed out or broke off is the peer's affair: it is closed without a traceback."""


def _powers_of_two_up_to(limit: int) -> list[float]:
    buckets, size = [], 1
    while size < limit:
        buckets.append(float(size))
        size *= 2
    return [*buckets, float(limit)]
