"""Prometheus metrics of the server, in a registry of their own, served as text over HTTP."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
QUEUE_BUCKETS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5)


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

    def serve_http(self, host: str, port: int) -> tuple[object, int]:
        """Starts the /metrics HTTP server in a thread; returns it and the port it listens on."""
        httpd, _thread = start_http_server(port, addr=host, registry=self.registry)
        return httpd, httpd.server_port


def _powers_of_two_up_to(limit: int) -> list[float]:
    buckets, size = [], 1
    while size < limit:
        buckets.append(float(size))
        size *= 2
    return [*buckets, float(limit)]
