"""The command line: every case over the repeats, interleaved, then the results files."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import onnxruntime as ort
from machine import describe  # benchmarks/machine.py: serving_bench.py's folder is on the import path

from mnist_edge.contract import MANIFEST_FILE
from mnist_edge.serve.model import OnnxModel
from mnist_edge.serve.server import ServerConfig

from .cases import CASES, CONCURRENCY, KSERVE_1, Case
from .figures import medians
from .kserve_venv import KSERVE_PACKAGE, ensure_kserve_venv
from .measure import Levels, measure_case
from .messages import DISTINCT_REQUESTS
from .mnist import mnist_test_images
from .paths import MODEL, REPO, RESULTS
from .report import write_results
from .targets import spread, target_ratios

SCRIPT = ".venv/bin/python benchmarks/serving_bench.py"
QUICK = {"repeats": 1, "seconds": 0.5, "concurrency": [1, 64]}  # 64: the targets are read there


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=SCRIPT, description="Serving benchmark: throughput, latency, and the "
                                "server's CPU time and memory under a closed-loop load.")
    p.add_argument("--repeats", type=int, default=3, help="runs of every case, interleaved (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=3.0, help="time bound per level (default: %(default)s)")
    p.add_argument("--requests", type=int, default=6000,
                   help="request bound per level for 1-image cases; 256-image cases get a 20th (default: %(default)s)")
    p.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY), metavar="N",
                   help="calls in flight, one level each (default: %(default)s)")
    p.add_argument("--no-peer", action="store_true", help="skip the KServe peer")
    p.add_argument("--only", nargs="+", metavar="TEXT",
                   help="run only the cases whose names contain one of these, e.g. --only worker")
    p.add_argument("--quick", action="store_true",
                   help="a check that everything runs, with figures of little worth: "
                        "--repeats 1 --seconds 0.5 --concurrency 1 64, unless given")
    p.add_argument("--out", type=Path, default=RESULTS,
                   help="folder for serve_CLASS.json, .md and .png (default: benchmarks/results)")
    args = p.parse_args(argv)
    if args.quick:  # the preset becomes the defaults, so that flags given explicitly still win
        p.set_defaults(**QUICK)
        args = p.parse_args(argv)
    return args


def run_repeats(cases: list[Case], levels: Levels, repeats: int) -> list[dict]:
    """Every case once per repeat, each row printed as it comes."""
    model = OnnxModel(MODEL, "cpu")
    images = mnist_test_images(DISTINCT_REQUESTS * max(case.images for case in cases))
    rows = []
    with tempfile.TemporaryDirectory() as logs:
        for repeat in range(repeats):
            for case in cases:  # interleaved, so that a slow spell of a shared machine touches every case
                for r in measure_case(case, levels, images, model, Path(logs)):
                    rows.append({"repeat": repeat, **r})
                    print(json.dumps(rows[-1]), flush=True)
    return rows


def run_info(argv: list[str], args: argparse.Namespace, batch_delay_ms: float, peer: str) -> dict:
    """What the results files say about how they were made."""
    version = json.loads((MODEL.parent / MANIFEST_FILE).read_text())["version"]
    return {"command": " ".join([SCRIPT, *argv]), "repeats": args.repeats, "seconds": args.seconds,
            "requests": args.requests, "batch_delay_ms": batch_delay_ms,
            "machine": describe(), "onnxruntime": ort.__version__,
            "model": f"{MODEL.relative_to(REPO)} ({version})", "peer": peer}


def peer_problem(args: argparse.Namespace, cases: list[Case]) -> str | None:
    """Why the KServe peer will not run; None when it will (its environment is installed on first use)."""
    if KSERVE_1 not in cases:
        return "not among --only"
    return "--no-peer" if args.no_peer else ensure_kserve_venv()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    cases = [case for case in CASES if not args.only or any(text in case.name for text in args.only)]
    if not cases:
        print(f"no case's name contains any of {args.only}", file=sys.stderr)
        return 2
    why_not = peer_problem(args, cases)
    if why_not:
        print(f"benchmarking without the KServe peer: {why_not}", file=sys.stderr)
        cases = [case for case in cases if case != KSERVE_1]
    batch_delay_ms = ServerConfig().max_batch_delay_ms  # the batching cases run with the server's defaults
    levels = Levels(tuple(args.concurrency), args.requests, args.seconds)
    rows = run_repeats(cases, levels, args.repeats)
    targets = spread([target_ratios([r for r in rows if r["repeat"] == i], batch_delay_ms)
                      for i in range(args.repeats)])
    info = run_info(argv, args, batch_delay_ms, why_not or KSERVE_PACKAGE)
    print(write_results(args.out, info, medians(rows), targets, rows))
    return 0
