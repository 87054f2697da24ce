"""`mnist-edge serve --workers N`: real server processes sharing one port, their supervisor, its one /metrics,
and how they stop."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from serve_harness import ServerProcess, copy_bundle, mnist_test_set, run_server_expecting_failure, wait_until

from mnist_edge.contract import sha256_of
from mnist_edge.v1 import classifier_pb2 as pb
from mnist_edge.v1 import classifier_pb2_grpc as pb_grpc

IMAGES, LABELS = mnist_test_set(4)
REQUEST = pb.PredictRequest(images=[image.tobytes() for image in IMAGES])
# A request whose model run (about a second on one core) outlasts what a test does meanwhile.
LARGE = pb.PredictRequest(images=[IMAGES[0].tobytes()] * 20_000)
LARGE_REQUESTS = ("--max-images", "20000", "--max-message-mb", "64")
PREDICT_OK = 'mnist_edge_requests_total{code="OK",method="mnist_edge.v1.Classifier/Predict"}'
CHECK_OK = 'mnist_edge_requests_total{code="OK",method="grpc.health.v1.Health/Check"}'
CONNECTIONS = 40  # new connections, each landing on either of 2 workers: all on one has odds of 2**-39

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="--workers above 1 needs Linux")


def new_connection(target: str) -> grpc.Channel:
    """A channel with a TCP connection of its own (gRPC otherwise shares one between a process's channels)."""
    return grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


def health_check(channel: grpc.Channel) -> int:
    request = health_pb2.HealthCheckRequest(service="")
    return health_pb2_grpc.HealthStub(channel).Check(request, timeout=30).status


def answering_pids(server: ServerProcess, method: str) -> list[int]:
    """The pid of the process that answered each call of `method`, from the --log-requests lines, in order."""
    return [event["pid"] for event in server.events() if event["event"] == "request" and event["method"] == method]


def gone(pid: int) -> bool:
    """True once `pid` has exited: no such process, or a zombie that its new parent has not reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def one_sentence(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_both_workers_answer_and_one_metrics_endpoint_counts_every_call(tmp_path):
    with ServerProcess(tmp_path / "log.jsonl", "--workers", "2", "--log-requests") as server:
        pids = server.wait_for_event("start")["pids"]
        assert len(set(pids)) == 2 and server.process.pid not in pids
        for _ in range(CONNECTIONS):
            with new_connection(server.target) as channel:
                assert health_check(channel) == health_pb2.HealthCheckResponse.SERVING
                answer = pb_grpc.ClassifierStub(channel).Predict(REQUEST, timeout=30)
                assert [p.label for p in answer.predictions] == LABELS.tolist()
        # Each worker answered calls, health checks included, and the one /metrics counts every call of both.
        assert set(answering_pids(server, "mnist_edge.v1.Classifier/Predict")) == set(pids)
        assert set(answering_pids(server, "grpc.health.v1.Health/Check")) == set(pids)
        assert server.metric(PREDICT_OK) == CONNECTIONS
        assert server.metric(CHECK_OK) == CONNECTIONS
        assert server.metric("mnist_edge_batch_size_images_sum") == CONNECTIONS * len(IMAGES)
        assert server.metric("mnist_edge_in_flight_requests") == 0
        assert server.stop() == 0


def connection_to_each_worker(server: ServerProcess, pids: list[int]) -> dict[int, grpc.Channel]:
    """An open channel to every worker, found by health checks over new connections until each pid has answered."""
    channels: dict[int, grpc.Channel] = {}
    for _ in range(CONNECTIONS):
        channel = new_connection(server.target)
        health_check(channel)
        pid = answering_pids(server, "grpc.health.v1.Health/Check")[-1]
        if pid in channels:
            channel.close()
        else:
            channels[pid] = channel
        if channels.keys() == set(pids):
            return channels
    raise AssertionError(f"{CONNECTIONS} new connections all went to {list(channels)}")


def test_sigterm_drains_calls_on_every_worker_then_exits_0_leaving_no_process(tmp_path):
    # The grace is generous: the test is about draining, and a loaded 2-core machine is slow.
    args = ("--workers", "2", "--log-requests", "--grace", "120", *LARGE_REQUESTS)
    with ServerProcess(tmp_path / "log.jsonl", *args) as server, ThreadPoolExecutor(4) as callers:
        pids = server.wait_for_event("start")["pids"]
        channels = connection_to_each_worker(server, pids)
        try:
            stubs = [pb_grpc.ClassifierStub(channel) for channel in channels.values()]
            calls = [callers.submit(stub.Predict, LARGE, timeout=150) for stub in stubs]  # each worker runs one
            # the sum over the workers
            wait_until(lambda: server.metric("mnist_edge_in_flight_requests") == 2, timeout=60)
            calls += [callers.submit(stub.Predict, REQUEST, timeout=150) for stub in stubs]  # they queue behind
            wait_until(lambda: server.metric("mnist_edge_in_flight_requests") == 4, timeout=60)
            server.process.send_signal(signal.SIGTERM)
            answers = [call.result(timeout=150) for call in calls]
        finally:
            for channel in channels.values():
                channel.close()
        assert [len(answer.predictions) for answer in answers] == [len(LARGE.images)] * 2 + [len(IMAGES)] * 2
        assert server.process.wait(timeout=150) == 0
    assert all(gone(pid) for pid in pids)
    worker_events = [(event["pid"], event["event"]) for event in server.events() if "worker" in event]
    for pid in pids:
        assert [name for p, name in worker_events if p == pid and name != "request"] == ["ready", "draining", "stop"]
    supervisor_events = [event for event in server.events() if "worker" not in event]
    assert [event["event"] for event in supervisor_events] == ["start", "draining", "stop"]
    assert supervisor_events[-1]["exit_codes"] == [0, 0]


def test_a_worker_that_dies_stops_the_server_with_exit_1_and_a_sentence(tmp_path):
    with ServerProcess(tmp_path / "log.jsonl", "--workers", "2") as server:
        pids = server.wait_for_event("start")["pids"]
        os.kill(pids[1], signal.SIGKILL)
        assert server.process.wait(timeout=60) == 1
    assert all(gone(pid) for pid in pids)
    last_line = server.log_path.read_text().strip().splitlines()[-1]
    assert last_line == (f"mnist-edge serve: worker 1 (pid {pids[1]}) was killed by SIGKILL; "
                         "every worker has stopped")


def test_workers_stop_when_the_supervisor_is_killed(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the killed supervisor leaves its metrics folder
    with ServerProcess(tmp_path / "log.jsonl", "--workers", "2") as server:
        pids = server.wait_for_event("start")["pids"]
        server.process.kill()
        server.process.wait(timeout=30)
        try:
            wait_until(lambda: all(gone(pid) for pid in pids), timeout=60)
        finally:  # leaves no orphan behind when the test fails
            for pid in [pid for pid in pids if not gone(pid)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    drained = [event["pid"] for event in server.events() if event["event"] == "stop" and "worker" in event]
    assert sorted(drained) == sorted(pids)  # they drained on SIGTERM rather than being killed


def test_ports_in_use_are_refused_in_one_sentence(tmp_path):
    with ServerProcess(tmp_path / "workers.jsonl", "--workers", "2") as workers:
        for args in ((), ("--workers", "2")):  # a lone server, then workers, on the workers' port
            second = run_server_expecting_failure("--port", str(workers.port), *args)
            assert second.returncode == 2, second.stderr
            assert f"port {workers.port} is in use" in one_sentence(second.stderr)
        second = run_server_expecting_failure("--workers", "2", "--metrics-port", str(workers.metrics_port))
        assert second.returncode == 2, second.stderr
        assert f"cannot serve metrics on 127.0.0.1 port {workers.metrics_port}" in one_sentence(second.stderr)
        with new_connection(workers.target) as channel:
            assert health_check(channel) == health_pb2.HealthCheckResponse.SERVING
        assert workers.stop() == 0
    with ServerProcess(tmp_path / "lone.jsonl") as lone:  # and workers on a lone server's port
        second = run_server_expecting_failure("--port", str(lone.port), "--workers", "2")
        assert second.returncode == 2, second.stderr
        assert f"port {lone.port} is in use" in one_sentence(second.stderr)
        assert lone.stop() == 0


def test_a_model_no_worker_can_load_is_one_sentence(tmp_path):
    model = copy_bundle(tmp_path)
    model.write_bytes(b"not an ONNX model")
    manifest_path = model.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][model.name]["sha256"] = sha256_of(model)
    manifest_path.write_text(json.dumps(manifest))
    result = run_server_expecting_failure("--workers", "2", model=model)
    assert result.returncode == 2
    assert "ONNX Runtime cannot load" in one_sentence(result.stderr)


def max_workers_per_core() -> int:
    """Read in a child process: importing the server here would register its v2 stubs, whose proto package
    (`inference`) clashes with tritonclient's, which other test modules import into this process."""
    code = "from mnist_edge.serve.workers import MAX_WORKERS_PER_CORE; print(MAX_WORKERS_PER_CORE)"
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def test_more_workers_than_the_machine_should_run_are_refused():
    too_many = max_workers_per_core() * (os.cpu_count() or 1) + 1
    result = run_server_expecting_failure("--workers", str(too_many))
    assert result.returncode == 2
    assert f"--workers {too_many} is more than" in one_sentence(result.stderr)
    assert run_server_expecting_failure("--workers", "0").returncode == 2


def test_one_worker_is_the_lone_server(tmp_path):
    with ServerProcess(tmp_path / "log.jsonl", "--workers", "1") as server:
        assert "pids" not in server.wait_for_event("start")
        assert server.stop() == 0
    assert [event["event"] for event in server.events()] == ["start", "draining", "stop"]
    assert all(event["pid"] == server.process.pid for event in server.events() if "pid" in event)
