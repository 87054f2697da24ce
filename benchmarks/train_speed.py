"""Training speed and accuracy of the default recipe: seconds per epoch and in total, and the final-epoch test
accuracy for each seed, with mean and spread, for one or more training precisions.

    python benchmarks/train_speed.py --seeds 5                       # the default recipe, seeds 0..4
    python benchmarks/train_speed.py --seeds 2 --precision bf16 fp32 --name train_speed_precision
    python benchmarks/train_speed.py --seeds 1 --epochs 3            # a quick look

With several precisions the runs take turns seed by seed, so the speed ratio is taken under the same machine
load. Figures are printed and saved to benchmarks/results/<name>.json and .md (default name:
train_speed_<device>).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from mnist_edge.train.trainer import Config, Trainer

RESULTS = Path(__file__).resolve().parent / "results"


def run_seed(config: Config, runs_dir: Path) -> dict:
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
        "epoch_seconds": [round(e["seconds"], 2) for e in history],
        "total_seconds": round(total, 1),
        "device": metrics["device"],
        "parameters": metrics["parameters"],
        "run_folder": str(folder),
    }


def summarize(runs: list[dict]) -> dict:
    accs = [r["final_test_acc"] for r in runs]
    totals = [r["total_seconds"] for r in runs]
    return {
        "runs": len(runs),
        "accuracy_mean": round(statistics.mean(accs), 3),
        "accuracy_std": round(statistics.stdev(accs), 3) if len(accs) > 1 else 0.0,
        "accuracy_min": min(accs),
        "accuracy_max": max(accs),
        "total_seconds_mean": round(statistics.mean(totals), 1),
        "epoch_seconds_mean": round(statistics.mean(s for r in runs for s in r["epoch_seconds"]), 2),
    }


def markdown(command: str, config: Config, runs: list[dict], summaries: dict[str, dict]) -> str:
    first = runs[0]
    lines = [f"`{command}`: default recipe, {config.epochs} epochs, on {first['device']} "
             f"({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads), "
             f"{first['parameters']:,} parameters, torch {torch.__version__}.", "",
             "| precision | seed | final-epoch test accuracy (%) | s / epoch | total s |", "|---|---|---|---|---|"]
    for r in runs:
        per_epoch = sum(r["epoch_seconds"]) / len(r["epoch_seconds"])
        lines.append(f"| {r['precision']} | {r['seed']} | {r['final_test_acc']:.2f} | {per_epoch:.1f} | "
                     f"{r['total_seconds']:.0f} |")
    for precision, s in summaries.items():
        lines.append(f"| {precision} | mean ± std | {s['accuracy_mean']:.3f} ± {s['accuracy_std']:.3f} "
                     f"(min {s['accuracy_min']:.2f}) | {s['epoch_seconds_mean']:.1f} | {s['total_seconds_mean']:.0f} |")
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
    parser.add_argument("--name", help="results file stem (default train_speed_<device>)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/train_speed"),
                        help="each run's folder (checkpoint, metrics) goes here")
    args = parser.parse_args()

    config = Config(epochs=args.epochs, device=args.device)
    runs = []
    for seed in range(args.seeds):
        for precision in args.precision:
            runs.append(run_seed(replace(config, seed=seed, precision=precision), args.runs_dir))
            r = runs[-1]
            print(f"{r['precision']} seed {seed}: final test accuracy {r['final_test_acc']:.2f}% "
                  f"in {r['total_seconds']:.0f} s", flush=True)
    precisions = dict.fromkeys(r["precision"] for r in runs)
    summaries = {p: summarize([r for r in runs if r["precision"] == p]) for p in precisions}
    command = " ".join(["python benchmarks/train_speed.py", *sys.argv[1:]])
    table = markdown(command, config, runs, summaries)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / (args.name or f"train_speed_{'cuda' if runs[0]['device'].startswith('cuda') else 'cpu'}")
    stem.with_suffix(".json").write_text(json.dumps({"command": command, "runs": runs, "summaries": summaries},
                                                    indent=2))
    stem.with_suffix(".md").write_text(table)
    print(f"saved {stem}.json and {stem}.md")


if __name__ == "__main__":
    main()
