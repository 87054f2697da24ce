"""Choices of network and recipe, measured on the validation split only: the final-epoch validation accuracy and
loss of named variants over several seeds, with mean and spread, so that a choice is made without the test set.

    python benchmarks/val_sweep.py --seeds 1,2,3,4 P="--stem s2d --widths 16,16/16,16,14" \\
        A5="--stem s2d --widths 16/16,16,16,14" LS0="--stem s2d --widths 16,16/16,16,14 --label-smoothing 0"

A variant is NAME="mnist-edge train flags". Every run holds out the same --val-split training images (train.trainer
fixes their choice) and trains on one thread, --jobs runs at a time: side by side they share the machine alike, so
their seconds compare within one sweep. A run folder (RUNS_DIR/NAME-seedN) that already holds the finished run of
the same recipe is read instead of trained again: training is deterministic for a seed, CPU class and thread
count. The trainer measures the test set once after the last epoch; the sweep neither prints nor saves it. Results:
benchmarks/results/<name>.json and .md (default name: val_sweep_CLASS, the CPU class from benchmarks/machine.py).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import shlex
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

import torch
from machine import describe, features_text  # this script's folder is on the import path

from mnist_edge.train.cli import build_parser, config_from_args
from mnist_edge.train.config import Config
from mnist_edge.train.trainer import Trainer

RESULTS = Path(__file__).resolve().parent / "results"
PER_RUN = ("out_dir", "progress")  # settings that name where a run goes, not what it computes


def variant(text: str) -> tuple[str, str]:
    name, sep, flags = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: a variant is NAME=\"mnist-edge train flags\"")
    return name, flags


def seed_list(text: str) -> list[int]:
    try:
        return [int(seed) for seed in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of seeds like 1,2,3,4") from None


def recipe(settings: dict) -> dict:
    """The settings that decide a run's result."""
    return {k: v for k, v in settings.items() if k not in PER_RUN}


def finished(config: Config) -> dict | None:
    """The metrics of the finished run of this recipe in config.out_dir, if it holds one."""
    path = Path(config.out_dir) / "metrics.json"
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    same = recipe(json.loads(json.dumps(asdict(config)))) == recipe(metrics["config"])  # as metrics.json stores it
    return metrics if same and len(metrics["epochs"]) == config.epochs else None


def train(config: Config) -> dict:
    """One run in a worker process (or its earlier result), reduced to its validation figures."""
    metrics = finished(config)
    if metrics is None:
        trainer = Trainer(config)
        with contextlib.redirect_stdout(io.StringIO()):  # its epoch lines end with the test figure: kept unseen
            trainer.run()
        trainer.write_metrics()
        metrics = trainer.metrics()
    final = metrics["final"]
    return {"seed": config.seed, "val_acc": final["val_acc"], "val_loss": round(final["val_loss"], 4),
            "seconds": round(metrics["wall_seconds"], 1), "parameters": metrics["parameters"],
            "run_folder": config.out_dir}


def summarize(runs: list[dict]) -> dict:
    accuracies = [r["val_acc"] for r in runs]
    return {"val_acc_mean": round(statistics.mean(accuracies), 3),
            "val_acc_std": round(statistics.stdev(accuracies), 3) if len(runs) > 1 else 0.0,
            "val_acc_min": min(accuracies),
            "val_loss_mean": round(statistics.mean(r["val_loss"] for r in runs), 4),
            "seconds_mean": round(statistics.mean(r["seconds"] for r in runs))}


def markdown(command: str, machine: dict, variants: dict[str, str], results: dict[str, list[dict]],
             val_split: int, jobs: int) -> str:
    lines = [f"`{command}`: final-epoch validation accuracy on {val_split:,} images held out of the training set, "
             f"on the CPU: {machine['cpu']}, class {machine['class']} ({features_text(machine)}), 1 thread a run, "
             f"{jobs} runs side by side, torch {torch.__version__}. The test set is not shown.", "",
             "| variant | flags | parameters | val accuracy (%) by seed | mean ± std (min) | val loss | s / run |",
             "|---|---|---|---|---|---|---|"]
    for name, runs in results.items():
        s = summarize(runs)
        seeds = ", ".join(f"{r['val_acc']:.2f}" for r in runs)
        lines.append(f"| {name} | `{variants[name]}` | {runs[0]['parameters']:,} | {seeds} | "
                     f"{s['val_acc_mean']:.3f} ± {s['val_acc_std']:.3f} ({s['val_acc_min']:.2f}) | "
                     f"{s['val_loss_mean']:.4f} | {s['seconds_mean']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", type=variant, metavar="NAME=FLAGS")
    parser.add_argument("--seeds", type=seed_list, default=[1, 2, 3, 4], help="e.g. 1,2,3,4 (the default)")
    parser.add_argument("--val-split", type=int, default=10_000, help="training images held out (default 10,000)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="runs at a time (default: one a core)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/val_sweep"))
    parser.add_argument("--name", help="results file stem (default val_sweep_CLASS)")
    args = parser.parse_args()
    variants = dict(args.variants)
    if len(variants) < len(args.variants):
        parser.error("two variants have the same name")
    if args.val_split < 1:
        parser.error("--val-split must hold out at least one image: the sweep reports validation figures")

    train_flags = build_parser()
    configs = {name: config_from_args(train_flags.parse_args(shlex.split(flags))) for name, flags in variants.items()}
    jobs = [(name, replace(config, seed=seed, val_split=args.val_split, threads=1, progress=False,
                           out_dir=str(args.runs_dir / f"{name}-seed{seed}")))
            for name, config in configs.items() for seed in args.seeds]
    # Fresh interpreters: each worker sets its own thread count before torch does any work.
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        done = list(pool.map(train, [config for _, config in jobs]))
    results: dict[str, list[dict]] = {name: [] for name in variants}
    for (name, _), run in zip(jobs, done, strict=True):
        results[name].append(run)
        print(f"{name} seed {run['seed']}: val {run['val_acc']:.2f}% (loss {run['val_loss']:.4f}) "
              f"in {run['seconds']:.0f} s", flush=True)

    command = shlex.join(["python", "benchmarks/val_sweep.py", *sys.argv[1:]])
    machine = describe()
    table = markdown(command, machine, variants, results, args.val_split, args.jobs)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / (args.name or f"val_sweep_{machine['class']}")
    stem.with_suffix(".json").write_text(json.dumps(
        {"command": command, "machine": machine, "torch": torch.__version__, "variants": variants,
         "runs": results, "summaries": {name: summarize(runs) for name, runs in results.items()}}, indent=2))
    stem.with_suffix(".md").write_text(table)
    print(f"saved {stem}.json and {stem}.md")


if __name__ == "__main__":
    main()
