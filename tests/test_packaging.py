"""What an install of mnist-edge gives a user: one import root, the Classifier stubs where protoc puts them, and a
wheel that serves its packaged model on its own, outside the checkout and without torch."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import venv
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from serve_harness import REPO, mnist_test_set

SHIPPED_V1 = {"classifier.proto", "classifier_pb2.py", "classifier_pb2.pyi", "classifier_pb2_grpc.py"}
SHIPPED_MODELS = {"mnist_int8.onnx", "mnist_fp32.onnx", "manifest.json"}
# A client of the server: the stubs named by `STUBS`, nothing else of mnist-edge.
CLIENT = """
import sys, grpc, numpy
from mnist_edge.v1 import classifier_pb2, classifier_pb2_grpc
print(classifier_pb2.__file__)
images = numpy.load(sys.argv[2])
stub = classifier_pb2_grpc.ClassifierStub(grpc.insecure_channel(sys.argv[1]))
reply = stub.Predict(classifier_pb2.PredictRequest(images=[i.tobytes() for i in images]), timeout=30)
print(*[p.label for p in reply.predictions])
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(REPO)],
                   check=True, timeout=600)
    [built] = out.glob("mnist_edge-*.whl")
    return built


def test_the_wheel_adds_one_import_root_and_ships_stubs_protos_and_the_bundle(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [top_level] = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert archive.read(top_level).decode().split() == ["mnist_edge"]
    assert all(n.startswith(("mnist_edge/", "mnist_edge-")) for n in names), names
    files = {n.removeprefix("mnist_edge/") for n in names if n.startswith("mnist_edge/")}
    assert {f"v1/{name}" for name in SHIPPED_V1} <= files
    assert {"serve/_v2/grpc_predict_v2.proto", "serve/_v2/grpc_predict_v2_pb2.py", "contract.py", "cli.py"} <= files
    assert {f"models/{name}" for name in SHIPPED_MODELS} == {f for f in files if f.startswith("models/")}
    # Namespace packages, as protoc's output is, so that a client's own generated stubs can sit beside them.
    assert "__init__.py" not in files and "v1/__init__.py" not in files


def start_server(python: Path, log: Path, cwd: Path, *args: str) -> subprocess.Popen:
    command = [str(python.parent / "mnist-edge"), "serve", "--host", "127.0.0.1", "--port", "0",
               "--metrics-port", "0", *args]
    with log.open("w") as out:
        return subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)


def started_port(server: subprocess.Popen, log: Path) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        if start := [e for e in events if e["event"] == "start"]:
            return start[0]["port"]
        assert server.poll() is None, log.read_text()
        time.sleep(0.1)
    raise TimeoutError(log.read_text())


@contextmanager
def serving(python: Path, folder: Path, *args: str) -> Iterator[tuple[str, dict]]:
    """A server run by `python`'s mnist-edge from `folder`; yields its address and its start event."""
    log = folder / "server.log"
    server = start_server(python, log, folder, *args)
    try:
        port = started_port(server, log)
        start = next(json.loads(line) for line in log.read_text().splitlines() if '"start"' in line)
        yield f"127.0.0.1:{port}", start
    finally:
        server.terminate()
        server.wait(30)


def call_with_stubs(python: Path, target: str, stubs: Path | None, folder: Path) -> tuple[str, list[int]]:
    """Runs CLIENT with `python`, with `stubs` (a folder) first on the path; returns the stub file and the labels."""
    images, _ = mnist_test_set(5)
    import numpy as np

    np.save(folder / "images.npy", images)
    env = {"PYTHONPATH": str(stubs)} if stubs else {}
    result = subprocess.run([str(python), "-c", CLIENT, target, str(folder / "images.npy")], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    stub_file, labels = result.stdout.splitlines()
    return stub_file, [int(label) for label in labels.split()]


def protoc_stubs(folder: Path) -> Path:
    """What a client does: protoc on the project's .proto into a folder of its own."""
    from grpc_tools import protoc

    out = folder / "generated"
    out.mkdir()
    proto_root = REPO / "protos"
    assert protoc.main(["protoc", f"-I{proto_root}", f"--python_out={out}", f"--grpc_python_out={out}",
                        "mnist_edge/v1/classifier.proto"]) == 0
    return out


@pytest.fixture(scope="module")
def wheel_venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv outside the checkout with `<wheel>[serve]` installed; returns its python."""
    folder = tmp_path_factory.mktemp("venv")
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"{wheel}[serve]"], check=True, timeout=900)
    return python


def test_the_wheel_serves_its_packaged_model_outside_the_checkout_without_torch(wheel_venv, tmp_path):
    no_torch = subprocess.run([str(wheel_venv), "-c", "import torch"], capture_output=True)
    assert no_torch.returncode != 0, "the serve extra must not bring torch"
    with serving(wheel_venv, tmp_path) as (target, start):
        assert Path(start["model"]).is_relative_to(wheel_venv.parent.parent), start  # the packaged bundle
        assert not Path(start["model"]).is_relative_to(REPO)
        digits = [str(REPO / "examples" / f"digit_{d}.png") for d in range(10)]
        predict = subprocess.run([str(wheel_venv.parent / "mnist-edge"), "predict", "--server", target, *digits],
                                 cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert predict.returncode == 0, predict.stderr
        answers = [line.rsplit(": ", 1)[1].split(" ")[0] for line in predict.stdout.splitlines()]
        assert answers == [str(d) for d in range(10)]


def test_a_client_uses_the_shipped_stubs_or_its_own_protoc_output(wheel_venv, tmp_path):
    _, labels = mnist_test_set(5)
    generated = protoc_stubs(tmp_path)
    with serving(wheel_venv, tmp_path) as (target, _):
        shipped_file, shipped = call_with_stubs(wheel_venv, target, None, tmp_path)
        own_file, own = call_with_stubs(wheel_venv, target, generated, tmp_path)
    assert Path(shipped_file).is_relative_to(wheel_venv.parent.parent)
    assert Path(own_file).is_relative_to(generated), "the client's own stubs must win over the installed ones"
    assert shipped == own == labels.tolist()
