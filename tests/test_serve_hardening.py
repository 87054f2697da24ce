"""Attacks on real server processes, and what the server does about them: a second server on a busy port,
small requests that parse into large messages, idle connections to /metrics, wrong TLS files, a full queue,
and calls that arrive just before SIGTERM."""
from __future__ import annotations

import shutil
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
from serve_harness import (
    ServerProcess,
    make_certificates,
    mnist_test_set,
    run_server_expecting_failure,
    wait_until,
)

from mnist_edge.serve.client import ClassifierClient
from mnist_edge.serve.metrics import METRICS_IDLE_TIMEOUT_S, METRICS_MAX_CONNECTIONS
from mnist_edge.v1 import classifier_pb2 as pb
from mnist_edge.v1 import classifier_pb2_grpc as pb_grpc

IMAGES, LABELS = mnist_test_set(2)
# 2,000,000 empty images: a 4 MB message (two bytes each), under the default 4 MB limit, that parses into a
# message of a hundred-odd megabytes before the server can count its images and refuse it.
EMPTY_IMAGES = pb.PredictRequest(images=[b""] * 2_000_000).SerializeToString()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def open_descriptors(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def assert_answers(target: str) -> None:
    with ClassifierClient(target, timeout=20) as client:
        assert [p.label for p in client.predict(IMAGES).predictions] == LABELS.tolist()


def one_sentence(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# --- a second server on the same port ----------------------------------------------------------------------------
def test_a_second_server_on_a_busy_port_exits_2(tmp_path):
    with ServerProcess(tmp_path / "log.jsonl") as first:
        second = run_server_expecting_failure("--port", str(first.port))
        assert second.returncode == 2, second.stderr
        line = one_sentence(second.stderr)
        assert f"port {first.port} is in use" in line
        assert_answers(first.target)
        assert first.stop() == 0


# --- refusals free their requests at once -----------------------------------------------------------------------
def test_refused_requests_that_parse_large_do_not_pile_up_in_memory(tmp_path):
    with (
        ServerProcess(tmp_path / "log.jsonl") as server,
        grpc.insecure_channel(server.target) as channel,
    ):
        predict = channel.unary_unary("/mnist_edge.v1.Classifier/Predict")  # raw bytes in and out

        def refuse(count: int) -> None:
            for _ in range(count):
                with pytest.raises(grpc.RpcError) as error:
                    predict(EMPTY_IMAGES, timeout=30)
                assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert "2000000 images" in error.value.details()

        refuse(5)  # the first refusals grow the heap to what one such request needs
        before = rss_mb(server.process.pid)
        refuse(200)
        growth = rss_mb(server.process.pid) - before
        assert growth < 100, f"the server grew by {growth:.0f} MB over 200 refused requests"
        assert_answers(server.target)
        assert server.stop() == 0


# --- the /metrics listener ---------------------------------------------------------------------------------------
def listening_addresses(pid: int, port: int) -> set[str]:
    """The local addresses (hex, as /proc/net/tcp* write them) of the process's sockets listening on `port`."""
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_metrics_listen_on_loopback_unless_asked(tmp_path):
    with ServerProcess(tmp_path / "log.jsonl", "--host", "0.0.0.0") as server:
        assert listening_addresses(server.process.pid, server.metrics_port) == {"0100007F"}  # 127.0.0.1
        assert server.events()[0]["metrics_host"] == "127.0.0.1"
        assert server.stop() == 0
    with ServerProcess(tmp_path / "wide.jsonl", "--metrics-host", "0.0.0.0") as server:
        assert listening_addresses(server.process.pid, server.metrics_port) == {"00000000"}
        assert server.stop() == 0


def test_half_sent_metrics_connections_are_capped_and_closed(tmp_path):
    with ServerProcess(tmp_path / "log.jsonl") as server:
        assert "mnist_edge_requests" in server.metrics()
        descriptors = open_descriptors(server.process.pid)
        connections = []
        for _ in range(50):
            connection = socket.create_connection(("127.0.0.1", server.metrics_port), timeout=5)
            connection.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # and never the blank line that ends it
            connections.append(connection)
        time.sleep(0.5)
        # The connections beyond the cap are answered 503 and closed at once; gRPC keeps its descriptors.
        assert open_descriptors(server.process.pid) <= descriptors + METRICS_MAX_CONNECTIONS + 4
        assert_answers(server.target)
        started = time.monotonic()
        answers = []
        for connection in connections:
            connection.settimeout(METRICS_IDLE_TIMEOUT_S + 10)
            with connection:
                answers.append(connection.recv(1024))  # b"" once the server closes it
        waited = time.monotonic() - started
        assert waited < METRICS_IDLE_TIMEOUT_S + 5
        assert sum(answer.startswith(b"HTTP/1.0 503") for answer in answers) >= 50 - METRICS_MAX_CONNECTIONS
        assert "mnist_edge_requests" in server.metrics()  # the slots are free again
        assert server.stop() == 0


# --- TLS files ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = make_certificates(tmp_path_factory.mktemp("tls"))
    (folder / "garbage.pem").write_text("this is not PEM\n")
    return folder


@pytest.mark.parametrize(("cert", "key", "client_ca", "wrong", "says"), [
    ("server.pem", "garbage.pem", None, "garbage.pem", "holds no PEM private key"),
    ("server.pem", "client.key", None, "client.key", "is not the private key of the certificate"),
    ("garbage.pem", "server.key", None, "garbage.pem", "holds no PEM certificate"),
    ("server.pem", "server.key", "garbage.pem", "garbage.pem", "client CA"),
    ("server.pem", "server.key", "missing.pem", "missing.pem", "cannot read TLS file"),
])
def test_a_wrong_tls_file_is_named(certificates, cert, key, client_ca, wrong, says):
    tls = ["--tls-cert", str(certificates / cert), "--tls-key", str(certificates / key)]
    if client_ca:
        tls += ["--tls-client-ca", str(certificates / client_ca)]
    result = run_server_expecting_failure(*tls)
    assert result.returncode == 2, result.stderr
    line = one_sentence(result.stderr)
    assert str(certificates / wrong) in line and says in line


def test_a_key_with_damaged_contents_is_named(certificates, tmp_path):
    damaged = tmp_path / "damaged.key"
    text = (certificates / "server.key").read_text().splitlines()
    damaged.write_text("\n".join([text[0], "AAAA" + text[1][4:], *text[2:]]) + "\n")
    result = run_server_expecting_failure("--tls-cert", str(certificates / "server.pem"), "--tls-key", str(damaged))
    assert result.returncode == 2
    assert str(damaged) in one_sentence(result.stderr)


# --- admission control -------------------------------------------------------------------------------------------
def test_a_full_queue_answers_resource_exhausted(tmp_path):
    large = np.repeat(IMAGES[:1], 20_000, axis=0)  # a model run of a second or so, during which others queue
    forty = np.repeat(IMAGES[:1], 40, axis=0)
    args = ("--max-images", str(len(large)), "--max-message-mb", "64", "--max-queue", "64")
    with (
        ServerProcess(tmp_path / "log.jsonl", *args) as server,
        ClassifierClient(server.target, timeout=60) as client,
        ThreadPoolExecutor(2) as callers,
    ):
        running = callers.submit(client.predict, large)  # alone in the queue, so admitted despite its size
        wait_until(lambda: server.metric("mnist_edge_batch_size_images_count") == 1)
        queued = callers.submit(client.predict, forty)  # 40 of the 64 places
        wait_until(lambda: server.metric("mnist_edge_in_flight_requests") == 2)
        with pytest.raises(grpc.RpcError) as error:
            client.predict(forty)
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "40 images wait" in error.value.details() and "at most 64" in error.value.details()
        assert len(running.result(timeout=60).predictions) == len(large)
        assert len(queued.result(timeout=60).predictions) == len(forty)
        assert len(client.predict(forty).predictions) == len(forty)  # room again
        refused = 'mnist_edge_requests_total{code="RESOURCE_EXHAUSTED",method="mnist_edge.v1.Classifier/Predict"}'
        assert server.metric(refused) == 1
        assert server.stop() == 0


# --- calls that arrive just before SIGTERM -----------------------------------------------------------------------
def test_calls_started_just_before_sigterm_are_answered_not_cancelled(tmp_path):
    request = pb.PredictRequest(images=[image.tobytes() for image in IMAGES])
    codes: list[grpc.StatusCode] = []
    for attempt in range(3):
        with (
            ServerProcess(tmp_path / f"log{attempt}.jsonl", "--grace", "20") as server,
            grpc.insecure_channel(server.target) as channel,
        ):
            predict = pb_grpc.ClassifierStub(channel).Predict
            predict(request, timeout=20)  # connected
            calls = [predict.future(request, timeout=20) for _ in range(150)]
            server.process.send_signal(signal.SIGTERM)
            calls += [predict.future(request, timeout=20) for _ in range(150)]
            for call in calls:
                try:
                    call.result()
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as error:
                    codes.append(error.code())
            assert server.process.wait(timeout=30) == 0
    # A call the server took is answered; one that came after it stopped taking calls is UNAVAILABLE.
    assert grpc.StatusCode.CANCELLED not in codes, {code.name: codes.count(code) for code in set(codes)}
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}
