"""Starting, refusing to start, deadlines, graceful shutdown and TLS of real server processes."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from serve_harness import (
    BUNDLE,
    MODEL,
    REPO,
    ServerProcess,
    copy_bundle,
    make_certificates,
    mnist_test_set,
    run_server_expecting_failure,
    wait_until,
)

from mnist_edge.serve.client import ClassifierClient

IMAGE = mnist_test_set(1)[0]
# A request large enough that its model run (about a second on one core) outlasts what a test does meanwhile.
LARGE = np.repeat(IMAGE, 20_000, axis=0)
LARGE_REQUESTS = ("--max-images", str(len(LARGE)), "--max-message-mb", "64")


def test_sigterm_drains_in_flight_calls_then_exits_0(tmp_path):
    # One large request keeps the model busy while small calls queue behind it and the signal arrives. The grace
    # is generous: on a loaded 2-core machine the large request alone took over 10 s, and the test is about draining.
    with (
        ServerProcess(tmp_path / "log.jsonl", *LARGE_REQUESTS, "--grace", "120") as server,
        grpc.insecure_channel(server.target) as channel,
        ClassifierClient(server.target) as client,
        ThreadPoolExecutor(5) as callers,
    ):
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        large = callers.submit(client.predict, LARGE)
        wait_until(lambda: server.metric("mnist_edge_in_flight_requests") == 1)
        calls = [callers.submit(client.predict, IMAGE) for _ in range(4)]
        wait_until(lambda: server.metric("mnist_edge_in_flight_requests") == 5)
        server.process.send_signal(signal.SIGTERM)
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()
        assert len(large.result(timeout=150).predictions) == len(LARGE)
        assert all(len(call.result(timeout=20).predictions) == 1 for call in calls)
        assert server.process.wait(timeout=150) == 0
    assert [event["event"] for event in server.events()] == ["start", "draining", "stop"]


def test_sigint_stops_at_once_when_only_a_health_watch_is_open(tmp_path):
    with (
        ServerProcess(tmp_path / "log.jsonl", "--grace", "30") as server,
        grpc.insecure_channel(server.target) as channel,
    ):
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        started = time.monotonic()
        assert server.stop(signal.SIGINT) == 0
        assert time.monotonic() - started < 5
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_work_for_an_expired_deadline_is_skipped(tmp_path):
    with (
        ServerProcess(tmp_path / "log.jsonl", *LARGE_REQUESTS) as server,
        ClassifierClient(server.target) as client,
        ThreadPoolExecutor(1) as caller,
    ):
        large = caller.submit(client.predict, LARGE)  # the hasty call below waits its turn behind this one
        wait_until(lambda: server.metric("mnist_edge_in_flight_requests") == 1)
        with ClassifierClient(server.target, timeout=0.1) as hasty, pytest.raises(grpc.RpcError) as error:
            hasty.predict(IMAGE)
        assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert len(large.result(timeout=60).predictions) == len(LARGE)
        wait_until(lambda: server.metric("mnist_edge_in_flight_requests") == 0)
        assert server.metric("mnist_edge_batch_size_images_count") == 1  # the large request's run only
        assert len(client.predict(IMAGE).predictions) == 1
        assert server.metric("mnist_edge_batch_size_images_count") == 2
        assert server.stop() == 0


@pytest.mark.skipif(BUNDLE != REPO / "models", reason="the tests were pointed at another bundle")
def test_the_default_model_is_the_shipped_int8_model(tmp_path):
    with ServerProcess(tmp_path / "log.jsonl", model=None) as server, ClassifierClient(server.target) as client:
        assert client.model_info().model_file == "mnist_int8.onnx"
        assert server.events()[0]["model"] == str(MODEL)  # the bundle the package installs
        assert server.stop() == 0


def test_a_tampered_model_is_refused(tmp_path):
    model = copy_bundle(tmp_path)
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))
    result = run_server_expecting_failure(model=model)
    assert result.returncode == 2
    assert "refusing a modified model" in result.stderr and "Traceback" not in result.stderr


def test_a_model_without_manifest_is_refused(tmp_path):
    shutil.copy(MODEL, tmp_path / MODEL.name)
    result = run_server_expecting_failure(model=tmp_path / MODEL.name)
    assert result.returncode == 2
    assert "manifest.json is missing" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this machine has CUDA")
def test_provider_cuda_without_cuda_is_one_clear_sentence():
    result = run_server_expecting_failure("--provider", "cuda")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "no CUDA execution provider" in result.stderr


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    return make_certificates(tmp_path_factory.mktemp("tls"))


def test_mutual_tls_accepts_a_signed_client_and_refuses_others(tmp_path, certificates):
    tls = ["--tls-cert", str(certificates / "server.pem"), "--tls-key", str(certificates / "server.key"),
           "--tls-client-ca", str(certificates / "ca.pem")]
    ca = (certificates / "ca.pem").read_bytes()
    with ServerProcess(tmp_path / "log.jsonl", *tls) as server:
        signed = ClassifierClient(server.target, root_certificates=ca, timeout=10,
                                  private_key=(certificates / "client.key").read_bytes(),
                                  certificate_chain=(certificates / "client.pem").read_bytes())
        with signed:
            assert len(signed.predict(IMAGE).predictions) == 1
        for anonymous in (ClassifierClient(server.target, root_certificates=ca, timeout=10),
                          ClassifierClient(server.target, timeout=10)):
            with anonymous, pytest.raises(grpc.RpcError) as error:
                anonymous.predict(IMAGE)
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        assert server.stop() == 0


def test_tls_serves_clients_that_trust_the_ca(tmp_path, certificates):
    tls = ["--tls-cert", str(certificates / "server.pem"), "--tls-key", str(certificates / "server.key")]
    with ServerProcess(tmp_path / "log.jsonl", *tls) as server:
        with ClassifierClient(server.target, root_certificates=(certificates / "ca.pem").read_bytes()) as client:
            assert len(client.predict(IMAGE).predictions) == 1
        assert server.stop() == 0


def test_serve_never_imports_torch():
    code = (
        "import importlib, pkgutil, sys\n"
        "import mnist_edge.serve as serve\n"
        "for module in pkgutil.walk_packages(serve.__path__, 'mnist_edge.serve.'):\n"
        "    if module.name != 'mnist_edge.serve.__main__':\n"
        "        importlib.import_module(module.name)\n"
        "assert 'mnist_edge.serve.server' in sys.modules and 'onnxruntime' in sys.modules\n"
        "assert 'torch' not in sys.modules, 'serve imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
