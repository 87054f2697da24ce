"""ONNX Runtime Web (WebAssembly, under Node) against Python ONNX Runtime on the same CPU: batch-1 latency and batch-256
throughput of the int8 model, `.onnx` and `.ort`, one thread on both sides.

    python benchmarks/web_inference.py [--rounds 10]

Needs Node.js and examples/web/node_modules (`make web` or `npm ci` in examples/web installs it). Every round builds
fresh sessions on both sides and the two take turns, so a burst of load from other processes hits both alike; each
ratio (Web / Python) is the median of the per-round ratios. Prints the table and writes
benchmarks/results/web_inference_<CPU class>.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from inference import BIG_BATCH, ort_session, timed  # this script's folder is on the import path
from machine import describe, features_text

from mnist_edge.contract import INPUT_NAME, INT8_FILE, ORT_FILE, to_model_input
from mnist_edge.train.data import load_split

REPO = Path(__file__).resolve().parents[1]
WEB = REPO / "examples" / "web"
RESULTS = REPO / "benchmarks" / "results"
MODELS = (INT8_FILE, ORT_FILE)
LATENCY_CALLS, BATCH_CALLS = 200, 8


def python_round(bundle: Path, images: np.ndarray) -> dict[str, dict]:
    """Seconds per call for each model in Python ONNX Runtime, one thread, fresh sessions."""
    x = to_model_input(images)
    samples = {}
    for name in MODELS:
        session = ort_session(bundle / name, threads=1)
        run = lambda batch, s=session: s.run(None, {INPUT_NAME: batch})  # noqa: E731
        samples[name] = {"latency": timed(run, x[:1], LATENCY_CALLS), "batch": timed(run, x, BATCH_CALLS)}
    return samples


def web_round(bundle: Path, images_file: Path) -> dict[str, dict]:
    """The same in ONNX Runtime Web under Node (examples/web/node/bench.mjs), fresh sessions."""
    # --no-liftoff: the WebAssembly is compiled optimized before the first call (bench.mjs says why).
    command = ["node", "--no-liftoff", str(WEB / "node" / "bench.mjs"), str(images_file),
               *(str(bundle / name) for name in MODELS),
               "--latency-calls", str(LATENCY_CALLS), "--batch-calls", str(BATCH_CALLS)]
    out = json.loads(subprocess.run(command, cwd=WEB, check=True, capture_output=True, text=True).stdout)
    return {name: out[str(bundle / name)] for name in MODELS}


def measure(bundle: Path, images: np.ndarray, rounds: int) -> list[dict]:
    """Per round, {"python": ..., "web": ...}; the side that goes first alternates."""
    with tempfile.TemporaryDirectory() as folder:
        images_file = Path(folder) / "images.u8"
        images.tofile(images_file)
        sides = {"python": lambda: python_round(bundle, images), "web": lambda: web_round(bundle, images_file)}
        order = list(sides)
        samples = []
        for _ in range(rounds):
            samples.append({side: sides[side]() for side in order})
            order.reverse()
        return samples


def summarize(samples: list[dict]) -> dict[str, dict]:
    """Per model and side: batch-1 p50/p99 over every call, batch-256 images/s from the median of the per-round
    medians; and the Web / Python ratios, median over rounds."""
    rows: dict[str, dict] = {}
    for name in MODELS:
        for side in ("python", "web"):
            latency_us = 1e6 * np.concatenate([s[side][name]["latency"] for s in samples])
            batch = statistics.median(statistics.median(s[side][name]["batch"]) for s in samples)
            rows.setdefault(name, {})[side] = {
                "batch1_p50_us": round(float(np.percentile(latency_us, 50)), 1),
                "batch1_p99_us": round(float(np.percentile(latency_us, 99)), 1),
                f"batch{BIG_BATCH}_images_per_s": round(BIG_BATCH / batch)}
        per_round = [{key: statistics.median(s["web"][name][key]) / statistics.median(s["python"][name][key])
                      for key in ("latency", "batch")} for s in samples]
        rows[name]["web_vs_python"] = {
            "batch1_p50": round(statistics.median(r["latency"] for r in per_round), 2),
            f"batch{BIG_BATCH}_throughput": round(statistics.median(1 / r["batch"] for r in per_round), 2)}
    return rows


def markdown(results: dict) -> str:
    machine = results["machine"]
    lines = [f"# ONNX Runtime Web (Node, WebAssembly) vs Python ONNX Runtime: {machine['cpu']}, class "
             f"{machine['class']}", "",
             f"{machine['cores']} cores; {features_text(machine)}. `{results['command']}`; onnxruntime-web "
             f"{results['versions']['onnxruntime-web']} on Node {results['versions']['node']}, onnxruntime "
             f"{results['versions']['onnxruntime']}; one thread each; {results['rounds']} rounds with fresh "
             "sessions, the two sides taking turns. Ratios: Web / Python, median of the per-round ratios.", "",
             f"| model | engine | batch-1 p50 µs | batch-1 p99 µs | batch-{BIG_BATCH} images/s |",
             "|---|---|---|---|---|"]
    for name, row in results["models"].items():
        lines += [f"| `{name}` | {label} | {row[side]['batch1_p50_us']:.1f} | {row[side]['batch1_p99_us']:.1f} | "
                  f"{row[side][f'batch{BIG_BATCH}_images_per_s']:,} |"
                  for side, label in (("python", "Python ORT"), ("web", "ORT Web (wasm)"))]
    lines += ["", f"| model | Web / Python batch-1 p50 latency | Web / Python batch-{BIG_BATCH} throughput |",
              "|---|---|---|"]
    lines += [f"| `{name}` | {ratio['batch1_p50']:.2f}x | {ratio[f'batch{BIG_BATCH}_throughput']:.2f}x |"
              for name, ratio in ((name, row["web_vs_python"]) for name, row in results["models"].items())]
    return "\n".join(lines) + "\n"


def versions() -> dict[str, str]:
    lock = json.loads((WEB / "package-lock.json").read_text())
    node = subprocess.run(["node", "--version"], check=True, capture_output=True, text=True).stdout.strip()
    return {"onnxruntime-web": lock["packages"]["node_modules/onnxruntime-web"]["version"], "node": node,
            "onnxruntime": ort.__version__}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=REPO / "models", help="exported bundle (default models/)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds (default %(default)s)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results (default %(default)s)")
    args = parser.parse_args(argv)
    if shutil.which("node") is None or not (WEB / "node_modules" / "onnxruntime-web").is_dir():
        print("error: this benchmark needs Node.js and examples/web/node_modules: install Node, then run `make web` "
              "or `npm ci` in examples/web.", file=sys.stderr)
        return 2
    images = np.ascontiguousarray(load_split(train=False)[0][:BIG_BATCH].numpy())
    command = " ".join(["python benchmarks/web_inference.py", *(sys.argv[1:] if argv is None else argv)])
    results = {"command": command, "machine": describe(), "versions": versions(), "rounds": args.rounds,
               "models": summarize(measure(args.bundle, images, args.rounds))}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"web_inference_{results['machine']['class']}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
    print(f"wrote {stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
