"""The servers under test, each started as a subprocess on a free loopback port and stopped when done."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from mnist_edge.serve._v2 import grpc_predict_v2_pb2 as v2

from .cases import Case
from .kserve_venv import KSERVE_PYTHON
from .messages import MODEL_NAME
from .paths import MODEL, REPO

LOOPBACK = "127.0.0.1"
HERE = Path(__file__).resolve().parent
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
MODEL_READY = "/inference.GRPCInferenceService/ModelReady"


@dataclass
class Server:
    process: subprocess.Popen
    target: str  # host:port


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def command(case: Case, port: int) -> list[str]:
    """The command line that starts the server of `case` on `port`."""
    if case.server == "mnist-edge":
        return [sys.executable, "-m", "mnist_edge.serve", "--model", str(MODEL), "--host", LOOPBACK,
                "--port", str(port), "--metrics-port", str(free_port()), *case.server_args]
    # -P keeps this folder off the scripts' import path, where its modules could shadow a library's.
    if case.server == "floor":
        return [sys.executable, "-P", str(HERE / "floor_server.py"), str(port)]
    if case.server == "kserve":
        return [str(KSERVE_PYTHON), "-P", str(HERE / "kserve_peer.py"), "--model", str(MODEL),
                "--grpc-port", str(port), "--http-port", str(free_port())]
    raise ValueError(f"no server called {case.server!r}")


@contextmanager
def running_server(case: Case, log_folder: Path) -> Iterator[Server]:
    """The server of `case`, ready to answer; its output goes to `log_folder`/<server>.log."""
    port = free_port()
    log_path = log_folder / f"{case.server}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command(case, port), cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    server = Server(process, f"{LOOPBACK}:{port}")
    try:
        wait_until_ready(server, log_path, logs_start=case.server == "mnist-edge")
        yield server
    finally:
        stop(process)


def wait_until_ready(server: Server, log_path: Path, logs_start: bool) -> None:
    """Polls v2 ModelReady, which every server here answers, until the model is ready; with `logs_start`
    (mnist-edge), also until the server has logged "start": with --workers, every worker listens by then."""
    deadline = time.monotonic() + START_TIMEOUT_S
    with grpc.insecure_channel(server.target) as channel:
        ready = channel.unary_unary(MODEL_READY, request_serializer=v2.ModelReadyRequest.SerializeToString,
                                    response_deserializer=v2.ModelReadyResponse.FromString)
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"the server exited with {server.process.returncode}:\n{log_path.read_text()}")
            try:
                started = not logs_start or '"event": "start"' in log_path.read_text()
                if started and ready(v2.ModelReadyRequest(name=MODEL_NAME), timeout=1).ready:
                    return
            except grpc.RpcError:
                pass  # not listening yet
            time.sleep(0.1)
    raise TimeoutError(f"the server was not ready within {START_TIMEOUT_S} s:\n{log_path.read_text()}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, so that the server drains and exits as it would in production; SIGKILL if it hangs."""
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
