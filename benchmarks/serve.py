"""Serving benchmark: throughput, latency and the server's own CPU time and memory under a closed-loop load.

    .venv/bin/python benchmarks/serve.py                          # everything, 3 repeats (about 7 minutes)
    .venv/bin/python benchmarks/serve.py --repeats 1 --seconds 1  # a quick look

Cases: in-process ONNX Runtime on the same model and settings (the ceiling); `Predict` with 1 image per request,
dynamic batching on and off; `Predict` with 256 images per request; v2 `ModelInfer` with 1 image per request;
and the peer a user would otherwise pick, a KServe `ModelServer` (benchmarks/kserve_peer.py, installed on first
use into .venv-kserve) answering v2 `ModelInfer`. Each server runs as a subprocess on a free loopback port.

The load generator is one grpc.aio channel with `concurrency` calls in flight, sending pre-serialized requests
and keeping the answers as bytes, so it spends little of the CPU it shares with the server. Each level runs
until `--requests` calls or `--seconds` have passed, after a short warm-up. The server's CPU time (user +
system, all threads) is read from /proc before and after each level. Results go to
benchmarks/results/serve.{json,md,png}; ratios against the peer and the ceiling are taken within each repeat.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this file's folder comes first on the path, and this file is also named serve

from serve._proto.inference import grpc_predict_v2_pb2 as v2  # noqa: E402
from serve._proto.mnist_edge.v1 import classifier_pb2 as pb  # noqa: E402
from serve.model import OnnxModel  # noqa: E402
from serve.server import ServerConfig  # noqa: E402
from tests.serve_harness import mnist_test_set  # noqa: E402

MODEL = REPO / "models" / "mnist_int8.onnx"
RESULTS = REPO / "benchmarks" / "results"
KSERVE_VENV = REPO / ".venv-kserve"
KSERVE_PACKAGE = "kserve==0.21.0"
PREDICT = "/mnist_edge.v1.Classifier/Predict"
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
CONCURRENCY = (1, 4, 16, 64)
DISTINCT_REQUESTS = 64  # requests cycle through this many different images
START_TIMEOUT_S = 60
TICK_S = 1 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Case:
    name: str
    server: str  # "mnist-edge", "kserve", "echo" or "in-process"
    images: int  # per request
    method: str = PREDICT
    server_args: tuple[str, ...] = ()


CEILING_1 = Case("in-process ORT, batch 1", "in-process", 1)
CEILING_256 = Case("in-process ORT, batch 256", "in-process", 256)
PREDICT_1 = Case("Predict 1 image, batching", "mnist-edge", 1)
PREDICT_1_DIRECT = Case("Predict 1 image, no batching", "mnist-edge", 1, server_args=("--no-batching",))
PREDICT_256 = Case("Predict 256 images", "mnist-edge", 256)
V2_1 = Case("v2 ModelInfer 1 image, batching", "mnist-edge", 1, MODEL_INFER)
KSERVE_1 = Case("KServe peer, v2 ModelInfer 1 image", "kserve", 1, MODEL_INFER)
# What a grpc.aio server costs per call before it does any work: the floor under every Python server here.
ECHO_1 = Case("grpc.aio floor: fixed answer, no model", "echo", 1)
CASES = (CEILING_1, CEILING_256, PREDICT_1, PREDICT_1_DIRECT, PREDICT_256, V2_1, KSERVE_1, ECHO_1)


# --- requests -------------------------------------------------------------------------------------------------

def request_images(case: Case, images: np.ndarray) -> list[np.ndarray]:
    """The uint8 images of `DISTINCT_REQUESTS` requests of `case.images` images each, cycling through `images`."""
    return [np.take(images, range(start, start + case.images), axis=0, mode="wrap")
            for start in range(0, DISTINCT_REQUESTS * case.images, case.images)]


def pixels(images: np.ndarray) -> np.ndarray:
    """uint8 [N, 28, 28] as the model's float32 [N, 1, 28, 28] input on the 0-1 scale."""
    return (images / np.float32(255)).astype(np.float32)[:, None]


def serialized(case: Case, images: np.ndarray) -> bytes:
    if case.method == PREDICT:
        return pb.PredictRequest(images=[image.tobytes() for image in images]).SerializeToString()
    tensor = v2.ModelInferRequest.InferInputTensor(name="image", datatype="FP32", shape=[len(images), 1, 28, 28])
    message = v2.ModelInferRequest(model_name="mnist", inputs=[tensor],
                                   raw_input_contents=[pixels(images).astype("<f4").tobytes()])
    return message.SerializeToString()


def labels_in(case: Case, answer: bytes) -> list[int]:
    if case.method == PREDICT:
        return [p.label for p in pb.PredictResponse.FromString(answer).predictions]
    logits = np.frombuffer(v2.ModelInferResponse.FromString(answer).raw_output_contents[0], "<f4")
    return logits.reshape(-1, 10).argmax(axis=1).tolist()


# --- servers --------------------------------------------------------------------------------------------------

@dataclass
class Server:
    process: subprocess.Popen
    target: str

    def cpu_seconds(self) -> float:
        """User + system time of every thread of the server so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * TICK_S  # utime and stime, fields 14 and 15 of stat

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc status")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(case: Case, log_folder: Path) -> Iterator[Server]:
    port = free_port()
    if case.server == "mnist-edge":
        command = [sys.executable, "-m", "serve", "--model", str(MODEL), "--host", "127.0.0.1", "--port", str(port),
                   "--metrics-port", str(free_port()), *case.server_args]
    elif case.server == "echo":
        command = [sys.executable, __file__, "--echo-server", str(port)]
    else:
        command = [str(KSERVE_VENV / "bin" / "python"), str(REPO / "benchmarks" / "kserve_peer.py"),
                   "--model", str(MODEL), "--grpc-port", str(port), "--http-port", str(free_port())]
    log_path = log_folder / f"{case.server}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    server = Server(process, f"127.0.0.1:{port}")
    try:
        wait_until_ready(server, log_path)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_ready(server: Server, log_path: Path) -> None:
    """Polls v2 ModelReady, which every server here answers, until the model is ready."""
    deadline = time.monotonic() + START_TIMEOUT_S
    with grpc.insecure_channel(server.target) as channel:
        ready = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelReady",
            request_serializer=v2.ModelReadyRequest.SerializeToString,
            response_deserializer=v2.ModelReadyResponse.FromString,
        )
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"the server exited with {server.process.returncode}:\n{log_path.read_text()}")
            try:
                if ready(v2.ModelReadyRequest(name="mnist"), timeout=1).ready:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"the server was not ready within {START_TIMEOUT_S} s:\n{log_path.read_text()}")


def fixed_reply(service: str, method: str, reply: bytes) -> grpc.GenericRpcHandler:
    """A handler that answers every call with the same serialized message (bytes in, bytes out: no parsing)."""
    return grpc.method_handlers_generic_handler(
        service, {method: grpc.unary_unary_rpc_method_handler(lambda request, context: reply)})


async def echo_server(port: int) -> None:
    """Answers every Predict with one fixed prediction, and ModelReady with ready, running no model."""
    answer = pb.PredictResponse(predictions=[pb.Prediction(label=0, confidence=1.0, probabilities=[1.0] + [0.0] * 9)])
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([
        fixed_reply("mnist_edge.v1.Classifier", "Predict", answer.SerializeToString()),
        fixed_reply("inference.GRPCInferenceService", "ModelReady",
                    v2.ModelReadyResponse(ready=True).SerializeToString()),
    ])
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


# --- load -----------------------------------------------------------------------------------------------------

@dataclass
class Load:
    latencies: list[float]  # seconds, one per call
    seconds: float  # wall time of the whole level
    client_cpu_s: float
    server_cpu_s: float


async def closed_loop(
    call: Callable, requests: list[bytes], concurrency: int, count: int, seconds: float,
) -> tuple[list[float], float]:
    """`concurrency` callers, each sending its next request as soon as its last one is answered."""
    latencies: list[float] = []
    issued = 0
    ends_at = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal issued
        while issued < count and time.perf_counter() < ends_at:
            request = requests[issued % len(requests)]
            issued += 1
            sent = time.perf_counter()
            await call(request)
            latencies.append(time.perf_counter() - sent)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


async def load_server(server: Server, case: Case, requests: list[bytes], expected: list[list[int]],
                      concurrency: int, count: int, seconds: float) -> Load:
    async with grpc.aio.insecure_channel(server.target) as channel:
        call = channel.unary_unary(case.method)  # bytes in, bytes out: the load generator parses nothing
        for request, labels in zip(requests, expected, strict=True):  # a server giving wrong answers is no result
            if case.server != "echo" and labels_in(case, await call(request)) != labels:
                raise RuntimeError(f"{case.name}: the server's labels differ from in-process ONNX Runtime")
        await closed_loop(call, requests, concurrency, count // 10, seconds / 5)  # warm-up
        server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
        latencies, wall = await closed_loop(call, requests, concurrency, count, seconds)
        return Load(latencies, wall, time.process_time() - client_cpu, server.cpu_seconds() - server_cpu)


def load_in_process(model: OnnxModel, images: np.ndarray, count: int, seconds: float) -> Load:
    """The ceiling: the same model and session settings, called back to back without any server."""
    batch = pixels(images)
    for _ in range(10):  # warm-up
        model.run(batch)
    latencies: list[float] = []
    cpu, started = time.process_time(), time.perf_counter()
    while len(latencies) < count and time.perf_counter() - started < seconds:
        sent = time.perf_counter()
        model.run(batch)
        latencies.append(time.perf_counter() - sent)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return Load(latencies, wall, cpu, cpu)


def row(case: Case, concurrency: int, load: Load, peak_rss_mib: float | None) -> dict:
    n = len(load.latencies)
    p50, p90, p99 = np.percentile(load.latencies, [50, 90, 99]) * 1000
    return {
        "case": case.name, "concurrency": concurrency, "requests": n, "seconds": round(load.seconds, 3),
        "requests_per_s": round(n / load.seconds, 1), "images_per_s": round(n * case.images / load.seconds, 1),
        "p50_ms": round(p50, 3), "p90_ms": round(p90, 3), "p99_ms": round(p99, 3),
        "server_cpu_us_per_request": round(load.server_cpu_s / n * 1e6, 1),
        "client_cpu_us_per_request": round(load.client_cpu_s / n * 1e6, 1) if case.server != "in-process" else None,
        "server_peak_rss_mib": None if peak_rss_mib is None else round(peak_rss_mib, 1),
    }


# --- the run --------------------------------------------------------------------------------------------------

def run_case(case: Case, args: argparse.Namespace, images: np.ndarray, model: OnnxModel, logs: Path) -> list[dict]:
    count = args.requests if case.images == 1 else max(args.requests // 20, 50)
    if case.server == "in-process":
        return [row(case, 1, load_in_process(model, images[:case.images], count, args.seconds), None)]
    batches = request_images(case, images)
    requests = [serialized(case, batch) for batch in batches]
    expected = [model.run(pixels(batch)).argmax(axis=1).tolist() for batch in batches]
    with running_server(case, logs) as server:
        loads = [asyncio.run(load_server(server, case, requests, expected, concurrency, count, args.seconds))
                 for concurrency in CONCURRENCY]
        peak_rss = server.peak_rss_mib()
    return [row(case, concurrency, load, peak_rss) for concurrency, load in zip(CONCURRENCY, loads, strict=True)]


def find(rows: list[dict], case: Case, concurrency: int) -> dict | None:
    return next((r for r in rows if r["case"] == case.name and r["concurrency"] == concurrency), None)


def target_ratios(rows: list[dict], batch_delay_ms: float) -> dict[str, float]:
    """The issue's targets as numbers, from the rows of one repeat (so that both sides shared the machine)."""
    ratios = {}
    peer = find(rows, KSERVE_1, 64)
    for case in (PREDICT_1, V2_1):
        ours = find(rows, case, 64)
        if ours and peer:
            ratios[f"{case.name} / peer, CPU per request at 64"] = (
                ours["server_cpu_us_per_request"] / peer["server_cpu_us_per_request"]
            )
            ratios[f"{case.name} / peer, throughput at 64"] = ours["requests_per_s"] / peer["requests_per_s"]
            ratios[f"{case.name} / peer, p99 at 64"] = ours["p99_ms"] / peer["p99_ms"]
    floor = find(rows, ECHO_1, 64)
    if floor and peer:
        ratios["grpc.aio floor (no model) CPU per request / the peer's, at 64, for reference"] = (
            floor["server_cpu_us_per_request"] / peer["server_cpu_us_per_request"]
        )
    ceiling = find(rows, CEILING_256, 1)
    best = max((r["images_per_s"] for r in rows if r["case"] == PREDICT_256.name), default=None)
    if ceiling and best:
        ratios["Predict 256 images (best concurrency) / in-process ceiling, images per s"] = (
            best / ceiling["images_per_s"]
        )
    batching, direct = find(rows, PREDICT_1, 1), find(rows, PREDICT_1_DIRECT, 1)
    if batching and direct:
        ratios[f"p50 at 1, batching - no batching, ms (configured delay {batch_delay_ms} ms)"] = (
            batching["p50_ms"] - direct["p50_ms"]
        )
    return ratios


TARGETS = {  # name fragment -> (comparison, bound)
    "CPU per request at 64": ("<=", 1 / 3),
    "throughput at 64": (">=", 1.0),
    "p99 at 64": ("<", 1.0),
    "in-process ceiling": (">=", 0.8),
    "batching - no batching": ("<=", None),  # the bound is the configured delay
}


def verdict(name: str, value: float, batch_delay_ms: float) -> str:
    for fragment, (comparison, bound) in TARGETS.items():
        if fragment in name:
            bound = batch_delay_ms if bound is None else bound
            met = {"<=": value <= bound, ">=": value >= bound, "<": value < bound}[comparison]
            return f"{'met' if met else 'MISSED'} (target {comparison} {bound:.3g})"
    return ""


FIGURES = ("requests", "seconds", "requests_per_s", "images_per_s", "p50_ms", "p90_ms", "p99_ms",
           "server_cpu_us_per_request", "client_cpu_us_per_request", "server_peak_rss_mib")


def medians(rows: list[dict]) -> list[dict]:
    """One row per case and concurrency: the median of each figure over the repeats."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["case"], r["concurrency"]), []).append(r)
    return [{"case": case, "concurrency": concurrency,
             **{key: median_or_none([r[key] for r in group]) for key in FIGURES}}
            for (case, concurrency), group in groups.items()]


def median_or_none(values: list[float | None]) -> float | None:
    return None if None in values else statistics.median(values)


def spread(per_repeat: list[dict[str, float]]) -> dict[str, dict]:
    """Each ratio's median, extremes and values over the repeats."""
    values: dict[str, list[float]] = {}
    for ratios in per_repeat:
        for name, value in ratios.items():
            values.setdefault(name, []).append(value)
    return {name: {"median": statistics.median(v), "min": min(v), "max": max(v), "values": [round(x, 3) for x in v]}
            for name, v in values.items()}


TABLE_COLUMNS = (("case", "case"), ("concurrency", "conc."), ("requests_per_s", "req/s"),
                 ("images_per_s", "images/s"), ("p50_ms", "p50 ms"), ("p90_ms", "p90 ms"), ("p99_ms", "p99 ms"),
                 ("server_cpu_us_per_request", "server CPU us/req"), ("client_cpu_us_per_request", "client CPU us/req"),
                 ("server_peak_rss_mib", "server peak RSS MiB"))


def markdown(summary: list[dict], targets: dict[str, dict], info: dict) -> str:
    lines = [f"Command: `{info['command']}`", "",
             f"{info['machine']}; ONNX Runtime {info['onnxruntime']}, {info['model']}; medians of {info['repeats']} "
             f"repeats, each level {info['seconds']} s or {info['requests']} requests (256-image: a 20th) after a "
             "warm-up; the load generator shares the CPU with the server. Server CPU is user + system time of the "
             "server process (all threads) per request; ONNX Runtime runs with one intra-op thread and no spinning "
             "everywhere. The grpc.aio floor is a server that answers a fixed message without running anything.",
             "",
             "| " + " | ".join(title for _, title in TABLE_COLUMNS) + " |",
             "|" + "---|" * len(TABLE_COLUMNS)]
    for r in summary:
        lines.append("| " + " | ".join("-" if r[key] is None else f"{r[key]:g}" if isinstance(r[key], float)
                                       else str(r[key]) for key, _ in TABLE_COLUMNS) + " |")
    lines += ["", "Targets (ratios taken within each repeat; median, and the range over repeats):", "",
              "| ratio | median | range | verdict on the median |", "|---|---|---|---|"]
    for name, s in targets.items():
        lines.append(f"| {name} | {s['median']:.3g} | {s['min']:.3g} to {s['max']:.3g} | "
                     f"{verdict(name, s['median'], info['batch_delay_ms'])} |")
    return "\n".join(lines) + "\n"


def plot(summary: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(13, 5), sharex=True)
    for case in CASES:
        rows = [r for r in summary if r["case"] == case.name]
        if not rows:
            continue
        style = "*" if case.server == "in-process" else "o-"
        for axis, key in zip(axes, ("p50_ms", "p99_ms"), strict=True):
            axis.plot([r["images_per_s"] for r in rows], [r[key] for r in rows], style, label=case.name)
            for r in rows if case.server != "in-process" else []:
                axis.annotate(str(r["concurrency"]), (r["images_per_s"], r[key]), fontsize=7,
                              textcoords="offset points", xytext=(3, 3))
    for axis, title in zip(axes, ("p50", "p99"), strict=True):
        axis.set(xscale="log", yscale="log", xlabel="images per second", ylabel=f"{title} latency (ms)",
                 title=f"{title} latency vs throughput (labels: concurrency)")
        axis.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


# --- KServe peer environment ---------------------------------------------------------------------------------

def ensure_kserve_venv() -> str | None:
    """Creates .venv-kserve with KServe and this ONNX Runtime on first use; returns why not when that fails."""
    python = KSERVE_VENV / "bin" / "python"
    if python.exists():
        return None
    print(f"installing {KSERVE_PACKAGE} into {KSERVE_VENV.name} (once)", flush=True)
    steps = ([sys.executable, "-m", "venv", str(KSERVE_VENV)],
             [str(python), "-m", "pip", "install", "--quiet", KSERVE_PACKAGE, f"onnxruntime=={ort.__version__}"])
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            return f"{' '.join(step[:4])} failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}"
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="runs of every case, interleaved (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=3.0, help="time bound per level (default: %(default)s)")
    p.add_argument("--requests", type=int, default=6000,
                   help="request bound per level for 1-image cases; 256-image cases get a 20th (default: %(default)s)")
    p.add_argument("--no-peer", action="store_true", help="skip the KServe peer")
    p.add_argument("--echo-server", type=int, metavar="PORT", help=argparse.SUPPRESS)  # the floor case's server
    args = p.parse_args()
    if args.echo_server:
        asyncio.run(echo_server(args.echo_server))
        return 0
    cases = list(CASES)
    why_not = "--no-peer" if args.no_peer else ensure_kserve_venv()
    if why_not:
        print(f"benchmarking without the KServe peer: {why_not}", file=sys.stderr)
        cases.remove(KSERVE_1)
    model = OnnxModel(MODEL, "cpu")
    images, _ = mnist_test_set(DISTINCT_REQUESTS * 256)
    batch_delay_ms = ServerConfig().max_batch_delay_ms  # the batching cases run with the server's defaults
    rows = []
    with tempfile.TemporaryDirectory() as logs:
        for repeat in range(args.repeats):
            for case in cases:
                for r in run_case(case, args, images, model, Path(logs)):
                    rows.append({"repeat": repeat, **r})
                    print(json.dumps(rows[-1]), flush=True)
    summary = medians(rows)
    targets = spread([target_ratios([r for r in rows if r["repeat"] == i], batch_delay_ms)
                      for i in range(args.repeats)])
    version = json.loads((MODEL.parent / "manifest.json").read_text())["version"]
    info = {"command": " ".join([".venv/bin/python benchmarks/serve.py", *sys.argv[1:]]), "repeats": args.repeats,
            "seconds": args.seconds, "requests": args.requests, "batch_delay_ms": batch_delay_ms,
            "machine": f"{cpu_model()}, {os.cpu_count()} cores",
            "onnxruntime": ort.__version__, "model": f"{MODEL.relative_to(REPO)} ({version})",
            "peer": why_not or KSERVE_PACKAGE}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve.json").write_text(json.dumps({"info": info, "summary": summary, "targets": targets,
                                                    "rows": rows}, indent=1) + "\n")
    text = markdown(summary, targets, info)
    (RESULTS / "serve.md").write_text(text)
    plot(summary, RESULTS / "serve.png")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
