"""Helpers for the serve tests: MNIST test images, the model bundle, and real servers in subprocesses.

The server runs in its own process: that is how it is deployed, it lets tests send signals, and it keeps
the server's `inference` protobuf descriptors apart from tritonclient's copy of the same package, which
cannot share one process's descriptor pool.
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from mnist_edge.contract import INPUT_NAME, to_model_input

REPO = Path(__file__).resolve().parent.parent
# MNIST_EDGE_BUNDLE points the tests at another bundle folder, e.g. a fresh export.
BUNDLE = Path(os.environ.get("MNIST_EDGE_BUNDLE", REPO / "models"))
MODEL = BUNDLE / "mnist_int8.onnx"
MNIST = REPO / "data" / "mnist"
START_TIMEOUT_S = 60


def wait_until(condition, timeout: float = 10) -> None:
    """Polls `condition` until it is true; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def mnist_test_set(count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` MNIST test images (uint8 [count, 28, 28]) and labels, read from the vendored files."""
    with gzip.open(MNIST / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(MNIST / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images[:count], labels[:count]


def reference_probabilities(images: np.ndarray, model: Path = MODEL) -> np.ndarray:
    """Softmax of in-process ONNX Runtime logits, the answer the server must reproduce."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    logits = session.run(None, {INPUT_NAME: to_model_input(images)})[0]
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def copy_bundle(folder: Path) -> Path:
    """A private copy of the model and its manifest, for tests that break one of them; returns the model."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (MODEL.name, "manifest.json"):
        shutil.copy(BUNDLE / name, folder / name)
    return folder / MODEL.name


class ServerProcess:
    """`python -m mnist_edge.serve` on free local ports; its JSON log lines go to a file the test can read.
    `model=None` leaves the choice to the server's default."""

    def __init__(self, log_path: Path, *args: str, model: Path | None = MODEL) -> None:
        self.log_path = log_path
        command = [sys.executable, "-m", "mnist_edge.serve", "--host", "127.0.0.1", "--port", "0",
                   "--metrics-port", "0",
                   *(["--model", str(model)] if model else []), *args]
        with log_path.open("w") as log:
            self.process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        start = self.wait_for_event("start")
        self.port, self.metrics_port = start["port"], start["metrics_port"]
        self.target = f"127.0.0.1:{self.port}"

    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]

    def wait_for_event(self, name: str) -> dict:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            found = [event for event in self.events() if event["event"] == name]
            if found:
                return found[0]
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            time.sleep(0.05)
        raise TimeoutError(f"no {name!r} log line within {START_TIMEOUT_S} s:\n{self.log_path.read_text()}")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as response:
            return response.read().decode()

    def metric(self, sample: str) -> float:
        """The value of one sample line, e.g. 'mnist_edge_batch_size_images_count'; 0 when absent."""
        for line in self.metrics().splitlines():
            if line.startswith(sample + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def make_certificates(folder: Path) -> Path:
    """A CA (ca.pem, ca.key), a server certificate for 127.0.0.1 (server.pem, server.key) and a client certificate
    (client.pem, client.key), all signed by the CA, written into `folder` with openssl; returns `folder`."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=test-ca", "-days", "1")
    for name, extension in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        (folder / f"{name}.ext").write_text(extension + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext")
    return folder


def run_server_expecting_failure(*args: str, model: Path = MODEL, timeout: float = 60) -> subprocess.CompletedProcess:
    """Runs `python -m mnist_edge.serve` that must refuse to start; returns the finished process."""
    command = [sys.executable, "-m", "mnist_edge.serve", "--model", str(model), "--host", "127.0.0.1", "--port", "0",
               "--metrics-port", "0", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
