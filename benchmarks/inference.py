"""Inference speed of the exported models on this machine's CPU: PyTorch eager fp32, ONNX Runtime fp32, int8 (.onnx)
and int8 (.ort), in one process with the same thread count, for 1 and 2 threads.

    python benchmarks/inference.py                       # the bundle in models/, about 20 seconds
    python benchmarks/inference.py --bundle OUT --checkpoint RUN/checkpoint.pt --rounds 15

Reports batch-1 latency (p50, p99) and batch-256 throughput, and the int8/fp32 ratios. The engines take turns in
every round, so a burst of load from other processes hits them alike, and every round builds them afresh; each
ratio is the median of the per-round ratios. Writes benchmarks/results/inference_CLASS.{json,md,png}; --compare adds
variant files to the same run.
"""
from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import matplotlib
import numpy as np
import onnxruntime as ort
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
from machine import describe, features_text  # noqa: E402  (this script's folder is on the import path)
from torchinfo import summary  # noqa: E402

from mnist_edge.contract import FP32_FILE, IMAGE_SHAPE, INPUT_NAME, INT8_FILE, ORT_FILE, to_model_input  # noqa: E402
from mnist_edge.export.rewrite import widen_for_int8  # noqa: E402
from mnist_edge.train.checkpoint import load_model  # noqa: E402
from mnist_edge.train.data import load_split  # noqa: E402
from mnist_edge.train.model import MnistNet  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
BIG_BATCH = 256
ENGINES = ("PyTorch fp32", "ORT fp32", "ORT int8 .onnx", "ORT int8 .ort")
BASELINE = "ORT fp32"


def ort_session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Worker threads that spin while idle burn a core between calls, which a device (and a shared host) cannot spare.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def torch_model(checkpoint: Path | None) -> MnistNet:
    """The trained network, or without a checkpoint a freshly initialized one: the time does not depend on weights."""
    return MnistNet().eval() if checkpoint is None else load_model(checkpoint)[0]


def multiply_adds(model: MnistNet) -> dict[str, int]:
    """Multiply-adds per image of the fp32 network and of the int8 one, which computes its zero-filled widened
    channels too (export.rewrite.widen_for_int8)."""
    return {precision: summary(net, input_size=(1, *IMAGE_SHAPE), verbose=0).total_mult_adds
            for precision, net in (("fp32", model), ("int8", widen_for_int8(model)))}


def runners(bundle: Path, model: MnistNet, threads: int,
            extra: dict[str, Path]) -> dict[str, Callable[[np.ndarray], object]]:
    """The engines, each with a new ONNX Runtime session (the PyTorch model is built once by the caller)."""

    @torch.inference_mode()
    def run_torch(x: np.ndarray) -> object:
        return model(torch.from_numpy(x))

    def run_ort(session: ort.InferenceSession) -> Callable[[np.ndarray], object]:
        return lambda x: session.run(None, {INPUT_NAME: x})

    files = [*(bundle / name for name in (FP32_FILE, INT8_FILE, ORT_FILE)), *extra.values()]
    sessions = [ort_session(path, threads) for path in files]
    return dict(zip([*ENGINES, *extra], [run_torch, *map(run_ort, sessions)], strict=True))


def timed(run: Callable[[np.ndarray], object], x: np.ndarray, calls: int) -> list[float]:
    """Seconds per call, after one untimed call."""
    run(x)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return times


def measure(make_engines: Callable[[], dict[str, Callable]], images: np.ndarray, rounds: int, latency_calls: int,
            batch_calls: int) -> dict[str, dict]:
    """Per engine: every batch-1 latency, and the median batch-256 time of each round.

    Every round builds fresh engines: the speed of an ONNX Runtime session varies from one instance to the next
    (int8/fp32 throughput read anywhere from 1.24x to 1.33x across session pairs in one process, each pair steady
    within itself), so one set of sessions would be one draw of that spread, not a measure of the files.
    """
    samples: dict[str, dict] = {}
    for _ in range(rounds):
        engines = make_engines()
        for name, run in engines.items():  # the engines take turns within each round
            samples.setdefault(name, {"latency": [], "batch": []})
            samples[name]["latency"] += timed(run, images[:1], latency_calls)
            samples[name]["batch"].append(statistics.median(timed(run, images[:BIG_BATCH], batch_calls)))
    return samples


def summarize(samples: dict[str, dict]) -> dict[str, dict]:
    base = samples[BASELINE]
    rows = {}
    for name, s in samples.items():
        latency_us = 1e6 * np.asarray(s["latency"])
        # Ratios per round (same moment, same load), then the median over rounds.
        throughput_ratios = [b / t for b, t in zip(base["batch"], s["batch"], strict=True)]
        per_round = len(s["latency"]) // len(s["batch"])
        latency_ratio = statistics.median(
            statistics.median(s["latency"][i:i + per_round]) / statistics.median(base["latency"][i:i + per_round])
            for i in range(0, len(s["latency"]), per_round))
        rows[name] = {"batch1_p50_us": round(float(np.percentile(latency_us, 50)), 1),
                      "batch1_p99_us": round(float(np.percentile(latency_us, 99)), 1),
                      f"batch{BIG_BATCH}_images_per_s": round(BIG_BATCH / statistics.median(s["batch"])),
                      "throughput_vs_ort_fp32": round(statistics.median(throughput_ratios), 3),
                      "throughput_vs_ort_fp32_range": [round(min(throughput_ratios), 3),
                                                       round(max(throughput_ratios), 3)],
                      "batch1_p50_vs_ort_fp32": round(latency_ratio, 3)}
    return rows


def markdown(results: dict) -> str:
    machine, macs = results["machine"], results["multiply_adds_per_image"]
    lines = [f"# Inference on the CPU: {machine['cpu']}, class {machine['class']}", "",
             f"{machine['cores']} cores; {features_text(machine)}. Multiply-adds per image: fp32 {macs['fp32']:,}, "
             f"int8 {macs['int8']:,} (with the zero filters that widen narrow layers for the int8 kernels).", "",
             f"`{results['command']}`; ONNX Runtime {results['versions']['onnxruntime']}, PyTorch "
             f"{results['versions']['torch']}; {results['rounds']} interleaved rounds, each with freshly built "
             "sessions. Ratios: median over rounds of the per-round ratio to ORT fp32 (throughput: higher is better; "
             "latency: lower is better).", ""]
    for threads, rows in results["threads"].items():
        lines += [f"## {threads} thread{'s' if threads != '1' else ''}", "",
                  f"| engine | batch-1 p50 µs | batch-1 p99 µs | batch-{BIG_BATCH} images/s | throughput vs ORT fp32 "
                  "(range over rounds) | batch-1 p50 vs ORT fp32 | GMAC/s |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {name} | {r['batch1_p50_us']:.1f} | {r['batch1_p99_us']:.1f} | "
                  f"{r[f'batch{BIG_BATCH}_images_per_s']:,} | {r['throughput_vs_ort_fp32']:.2f}x "
                  f"({r['throughput_vs_ort_fp32_range'][0]:.2f} to {r['throughput_vs_ort_fp32_range'][1]:.2f}) "
                  f"| {r['batch1_p50_vs_ort_fp32']:.2f}x | {r.get('gmac_per_s', '-')} |" for name, r in rows.items()]
        lines.append("")
    sizes = results["file_bytes"]
    fp32 = sizes["mnist_fp32.onnx"]
    lines += ["## Files", "", "| file | bytes | vs fp32 .onnx |", "|---|---|---|"]
    lines += [f"| `{name}` | {size:,} | {100 * size / fp32:.0f} % |" for name, size in sizes.items()]
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.38
    for offset, (threads, rows) in zip((-width / 2, width / 2), results["threads"].items(), strict=False):
        positions = np.arange(len(rows)) + offset
        label = f"{threads} thread{'s' if threads != '1' else ''}"
        axes[0].bar(positions, [r[f"batch{BIG_BATCH}_images_per_s"] for r in rows.values()], width, label=label)
        ratios = np.array([r["throughput_vs_ort_fp32"] for r in rows.values()])
        low, high = np.array([r["throughput_vs_ort_fp32_range"] for r in rows.values()]).T
        axes[1].bar(positions, ratios, width, yerr=[ratios - low, high - ratios], capsize=2, label=label)
    titles = (f"batch-{BIG_BATCH} throughput (images/s)", "throughput / ORT fp32 (median, range over rounds)")
    for ax, title in zip(axes, titles, strict=True):
        names = list(next(iter(results["threads"].values())))
        ax.set_xticks(range(len(names)), names, fontsize=7, rotation=20, ha="right")
        ax.set_title(title)
        ax.legend()
    axes[1].axhline(1.0, color="gray", linewidth=0.8)
    axes[1].axhline(1.3, color="firebrick", linewidth=0.8, linestyle="--", label="target 1.3x")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=REPO / "models", help="exported bundle (default models/)")
    parser.add_argument("--checkpoint", type=Path, help="weights for PyTorch (default: untrained, same speed)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="ORT and PyTorch threads")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default %(default)s)")
    parser.add_argument("--compare", metavar="LABEL=FILE", action="append", default=[],
                        help="another model file (ONNX or ORT format) to time alongside, e.g. a variant export")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results (default %(default)s)")
    parser.add_argument("--name", help="stem of the result files (default: inference_CLASS, CLASS the CPU class "
                        "from benchmarks/machine.py, so that each class keeps its own figures)")
    args = parser.parse_args(argv)
    missing = [name for name in (FP32_FILE, INT8_FILE, ORT_FILE) if not (args.bundle / name).is_file()]
    if missing:
        print(f"error: {args.bundle} lacks {', '.join(missing)}: export a bundle first.", file=sys.stderr)
        return 2
    extra = dict(item.partition("=")[::2] for item in args.compare)
    if any(not label or not Path(path).is_file() for label, path in extra.items()):
        print(f"error: --compare takes LABEL=FILE with an existing file, not {' '.join(args.compare)}.",
              file=sys.stderr)
        return 2
    extra = {label: Path(path) for label, path in extra.items()}
    images = to_model_input(load_split(train=False)[0][:BIG_BATCH].numpy())
    command = " ".join(["python benchmarks/inference.py", *(sys.argv[1:] if argv is None else argv)])
    model = torch_model(args.checkpoint)
    macs = multiply_adds(model)
    results = {"command": command, "machine": describe(), "multiply_adds_per_image": macs,
               "versions": {"onnxruntime": ort.__version__, "torch": torch.__version__},
               "rounds": args.rounds, "threads": {}}
    for threads in args.threads:
        torch.set_num_threads(threads)
        samples = measure(functools.partial(runners, args.bundle, model, threads, extra), images, args.rounds,
                          latency_calls=200, batch_calls=8)
        results["threads"][str(threads)] = rows = summarize(samples)
        for name in ENGINES:  # int8 engines compute the widened network; --compare files may be other networks
            row = rows[name]
            row["gmac_per_s"] = round(row[f"batch{BIG_BATCH}_images_per_s"] * macs["int8" if "int8" in name else "fp32"]
                                      / 1e9, 2)
        print(f"\n{threads} thread(s): batch-1 p50 / p99 (us), batch-{BIG_BATCH} images/s, ratios to {BASELINE}")
        for name, r in rows.items():
            print(f"  {name:<{max(map(len, rows))}} {r['batch1_p50_us']:8.1f} {r['batch1_p99_us']:8.1f} "
                  f"{r[f'batch{BIG_BATCH}_images_per_s']:9,}  throughput {r['throughput_vs_ort_fp32']:.2f}x  "
                  f"latency {r['batch1_p50_vs_ort_fp32']:.2f}x")
    results["file_bytes"] = {name: (args.bundle / name).stat().st_size
                             for name in (FP32_FILE, INT8_FILE, ORT_FILE)}
    results["file_bytes"] |= {label: path.stat().st_size for label, path in extra.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / (args.name or f"inference_{results['machine']['class']}")
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(results))
    plot(results, stem.with_suffix(".png"))
    print(f"\nwrote {stem}.json, .md and .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
