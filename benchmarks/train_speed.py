"""Training speed and accuracy of the default recipe: seconds per epoch and in total, the final-epoch test accuracy
for each seed in fp32 and of its exported int8 model, with mean and spread, for one or more training precisions.

    python benchmarks/train_speed.py --seeds 5                       # the default recipe, seeds 0..4
    python benchmarks/train_speed.py --seeds 5 --stem s2d --widths 16,16/16,16,14 --name train_speed_avx2_s2d
    python benchmarks/train_speed.py --seeds 2 --precision bf16 fp32 --name train_speed_precision
    python benchmarks/train_speed.py --seeds 1 --epochs 3 --no-int8  # a quick look

With several precisions the runs take turns seed by seed, so the speed ratio is taken under the same machine
load. Figures are printed and saved to benchmarks/results/<name>.json and .md (default name: train_speed_CLASS,
the CPU class from benchmarks/machine.py, or train_speed_cuda).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from machine import describe, features_text  # this script's folder is on the import path

from mnist_edge.export.pipeline import Options, run_export
from mnist_edge.train.cli import format_widths, parse_widths
from mnist_edge.train.config import STEMS
from mnist_edge.train.trainer import Config, Trainer

RESULTS = Path(__file__).resolve().parent / "results"


def int8_accuracy(checkpoint: Path, out: Path) -> float:
    """The int8 model's test accuracy from a full `mnist-edge export` of the checkpoint, gate off (the figure is
    wanted whatever it is)."""
    outcome = run_export(Options(checkpoint, out, min_accuracy=0.0), say=lambda _: None)
    return round(outcome.results.int8_accuracy, 2)


def run_seed(config: Config, runs_dir: Path, int8: bool) -> dict:
    folder = runs_dir / f"{config.precision}-seed{config.seed}"
    trainer = Trainer(replace(config, out_dir=str(folder), progress=False))
    tic = time.perf_counter()
    history = trainer.run()
    total = time.perf_counter() - tic
    trainer.write_metrics()
    metrics = trainer.metrics()
    return {
        "seed": config.seed,
        "precision": metrics["precision"],
        "final_test_acc": history[-1]["test_acc"],
        "int8_test_acc": int8_accuracy(trainer.checkpoint_path, folder / "bundle") if int8 else None,
        "epoch_seconds": [round(e["seconds"], 2) for e in history],
        "total_seconds": round(total, 1),
        "device": metrics["device"],
        "parameters": metrics["parameters"],
        "run_folder": str(folder),
    }


def spread(values: list[float], name: str) -> dict:
    return {f"{name}_mean": round(statistics.mean(values), 3),
            f"{name}_std": round(statistics.stdev(values), 3) if len(values) > 1 else 0.0,
            f"{name}_min": min(values), f"{name}_max": max(values)}


def summarize(runs: list[dict]) -> dict:
    totals = [r["total_seconds"] for r in runs]
    return {
        "runs": len(runs),
        **spread([r["final_test_acc"] for r in runs], "accuracy"),
        **(spread([r["int8_test_acc"] for r in runs], "int8_accuracy") if runs[0]["int8_test_acc"] else {}),
        "total_seconds_mean": round(statistics.mean(totals), 1),
        "epoch_seconds_mean": round(statistics.mean(s for r in runs for s in r["epoch_seconds"]), 2),
    }


def mean_cell(s: dict, name: str) -> str:
    if f"{name}_mean" not in s:
        return "-"
    return f"{s[f'{name}_mean']:.3f} ± {s[f'{name}_std']:.3f} (min {s[f'{name}_min']:.2f})"


def markdown(command: str, config: Config, machine: dict, runs: list[dict], summaries: dict[str, dict]) -> str:
    first = runs[0]
    where = first["device"] if first["device"] != "cpu" else (f"the CPU: {machine['cpu']}, class {machine['class']} "
                                                              f"({features_text(machine)})")
    network = f"stem {config.stem}, widths {format_widths(config.widths)}"
    lines = [f"`{command}`: default recipe ({network}), {config.epochs} epochs, on {where}, "
             f"{torch.get_num_threads()} threads, {first['parameters']:,} parameters, torch {torch.__version__}. "
             "int8: the test accuracy of `mnist-edge export`'s int8 model of each run.", "",
             "| precision | seed | final-epoch test accuracy (%) | int8 (%) | s / epoch | total s |",
             "|---|---|---|---|---|---|"]
    for r in runs:
        per_epoch = sum(r["epoch_seconds"]) / len(r["epoch_seconds"])
        int8 = "-" if r["int8_test_acc"] is None else f"{r['int8_test_acc']:.2f}"
        lines.append(f"| {r['precision']} | {r['seed']} | {r['final_test_acc']:.2f} | {int8} | {per_epoch:.1f} | "
                     f"{r['total_seconds']:.0f} |")
    for precision, s in summaries.items():
        lines.append(f"| {precision} | mean ± std | {mean_cell(s, 'accuracy')} | {mean_cell(s, 'int8_accuracy')} | "
                     f"{s['epoch_seconds_mean']:.1f} | {s['total_seconds_mean']:.0f} |")
    if len(summaries) > 1:
        base, *others = summaries.items()
        for precision, s in others:
            lines.append(f"\nTotal time {precision} / {base[0]}: "
                         f"{s['total_seconds_mean'] / base[1]['total_seconds_mean']:.2f}x.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="runs with seeds 0..N-1")
    parser.add_argument("--epochs", type=int, default=Config.epochs)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--precision", nargs="+", choices=["auto", "bf16", "fp32"], default=["auto"],
                        help="training precisions to run, taking turns seed by seed (default: auto)")
    parser.add_argument("--stem", choices=STEMS, default=Config.stem, help="the network's stem (train.model)")
    parser.add_argument("--widths", type=parse_widths, default=Config.widths,
                        help=f"the network's widths per stage (default {format_widths(Config.widths)})")
    parser.add_argument("--no-int8", dest="int8", action="store_false",
                        help="skip exporting each run to measure its int8 accuracy (about 30 s a run)")
    parser.add_argument("--name", help="results file stem (default train_speed_CLASS: the CPU class from "
                        "benchmarks/machine.py, or cuda)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/train_speed"),
                        help="each run's folder (checkpoint, metrics) goes here")
    args = parser.parse_args()

    config = Config(epochs=args.epochs, device=args.device, stem=args.stem, widths=args.widths)
    runs = []
    for seed in range(args.seeds):
        for precision in args.precision:
            runs.append(run_seed(replace(config, seed=seed, precision=precision), args.runs_dir, args.int8))
            r = runs[-1]
            print(f"{r['precision']} seed {seed}: final test accuracy {r['final_test_acc']:.2f}% "
                  f"(int8 {r['int8_test_acc']}) in {r['total_seconds']:.0f} s", flush=True)
    precisions = dict.fromkeys(r["precision"] for r in runs)
    summaries = {p: summarize([r for r in runs if r["precision"] == p]) for p in precisions}
    command = " ".join(["python benchmarks/train_speed.py", *sys.argv[1:]])
    machine = describe()
    table = markdown(command, config, machine, runs, summaries)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    on_gpu = runs[0]["device"].startswith("cuda")
    stem = RESULTS / (args.name or f"train_speed_{'cuda' if on_gpu else machine['class']}")
    stem.with_suffix(".json").write_text(json.dumps({"command": command, "machine": machine, "torch": torch.__version__,
                                                     "runs": runs, "summaries": summaries}, indent=2))
    stem.with_suffix(".md").write_text(table)
    print(f"saved {stem}.json and {stem}.md")


if __name__ == "__main__":
    main()
