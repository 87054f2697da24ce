"""Prometheus metrics of the server, in a registry of their own, served as text over HTTP.

The /metrics listener is bounded, unlike prometheus_client's start_http_server (a thread and a descriptor per
connection, for as long as the peer keeps it open): at most METRICS_MAX_CONNECTIONS connections at once, more are
answered 503 and closed at once, and a connection that sends nothing for METRICS_IDLE_TIMEOUT_S seconds is
closed. Idle or half-sent connections therefore cannot take the descriptors and threads the gRPC server needs.
"""
from __future__ import annotations

import contextlib
import socket
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, make_wsgi_app

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
        self.in_flight = Gauge("mnist_edge_in_flight_requests", "calls being answered now", registry=self.registry)
        self.batch_size = Histogram(
            "mnist_edge_batch_size_images", "images per ONNX Runtime run",
            buckets=_powers_of_two_up_to(max_batch), registry=self.registry,
        )
        self.queue_wait = Histogram(
            "mnist_edge_queue_wait_seconds", "time a request waited for its batch to form",
            buckets=QUEUE_BUCKETS, registry=self.registry,
        )
        self.model = Info("mnist_edge_model", "the model being served", registry=self.registry)

    def serve_http(
        self, host: str, port: int, max_connections: int = METRICS_MAX_CONNECTIONS,
        idle_timeout_s: float = METRICS_IDLE_TIMEOUT_S,
    ) -> tuple[MetricsHTTPServer, int]:
        """Starts the /metrics HTTP server in a thread; returns it (call .shutdown() to stop it) and its port.
        Raises OSError when host:port cannot be listened on."""
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        server_class = type("MetricsHTTPServer", (MetricsHTTPServer,), {"address_family": family})
        handler_class = type("Handler", (QuietHandler,), {"timeout": idle_timeout_s})
        httpd = make_server(host, port, make_wsgi_app(self.registry), server_class, handler_class)
        httpd.limit_connections(max_connections)
        threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True).start()
        return httpd, httpd.server_port


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

    def limit_connections(self, max_connections: int) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)

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
