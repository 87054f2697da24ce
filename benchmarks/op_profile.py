"""Where ONNX Runtime spends an inference, operator by operator: the evidence for how a network's int8 model
should fare on a CPU class that cannot be run here (the share of its time in integer convolutions is what VNNI
or AMX would speed up).

    python benchmarks/op_profile.py                       # the bundle in models/, 1 thread, batch 256
    python benchmarks/op_profile.py --bundle OUT --batch 1

Profiles the fp32 and int8 .onnx files with ONNX Runtime's own profiler (after the graph optimizations, so the
operators are the kernels that ran) and writes benchmarks/results/op_profile_CLASS.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[1]
from machine import describe, features_text  # noqa: E402  (this script's folder is on the import path)

from mnist_edge.contract import FP32_FILE, IMAGE_SHAPE, INPUT_NAME, INT8_FILE  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def profile(model: Path, batch: int, runs: int, threads: int) -> dict[str, float]:
    """Mean microseconds per inference spent in each operator type."""
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    with tempfile.TemporaryDirectory() as scratch:
        options.enable_profiling, options.profile_file_prefix = True, str(Path(scratch) / "profile")
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).random((batch, *IMAGE_SHAPE), dtype=np.float32)
        for _ in range(runs):
            session.run(None, {INPUT_NAME: x})
        events = json.loads(Path(session.end_profiling()).read_text())
    spent: dict[str, float] = defaultdict(float)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            spent[event["args"]["op_name"]] += event["dur"] / runs
    return dict(sorted(spent.items(), key=lambda item: -item[1]))


def table(name: str, spent: dict[str, float]) -> list[str]:
    total = sum(spent.values())
    lines = [f"### {name}: {total:,.0f} µs per inference", "", "| operator | µs | share |", "|---|---|---|"]
    return lines + [f"| {op} | {us:,.1f} | {100 * us / total:.1f} % |" for op, us in spent.items()] + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=REPO / "models", help="exported bundle (default models/)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--runs", type=int, default=50, help="profiled inferences per model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", help="stem of the result files (default: op_profile_CLASS)")
    args = parser.parse_args(argv)
    files = [args.bundle / FP32_FILE, args.bundle / INT8_FILE]
    if missing := [str(path) for path in files if not path.is_file()]:
        print(f"error: no exported model at {', '.join(missing)}; run mnist-edge export first.", file=sys.stderr)
        return 2
    machine = describe()
    results = {"command": " ".join(["python benchmarks/op_profile.py", *(argv if argv is not None else sys.argv[1:])]),
               "machine": machine, "onnxruntime": ort.__version__, "batch": args.batch, "threads": args.threads,
               "microseconds": {path.name: profile(path, args.batch, args.runs, args.threads) for path in files}}
    lines = [f"# ONNX Runtime per-operator profile: {machine['cpu']}, class {machine['class']}", "",
             f"{features_text(machine)}. `{results['command']}`; ONNX Runtime {ort.__version__}, batch {args.batch}, "
             f"{args.threads} thread(s), mean of {args.runs} inferences after graph optimization.", ""]
    for name, spent in results["microseconds"].items():
        lines += table(name, spent)
    text = "\n".join(lines)
    print(text)
    stem = RESULTS / (args.name or f"op_profile_{machine['class']}")
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    stem.with_suffix(".md").write_text(text)
    print(f"wrote {stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
