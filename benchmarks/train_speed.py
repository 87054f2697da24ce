"""Training speed and accuracy of the default recipe: seconds per epoch and in total, and the final-epoch test
accuracy for each seed, with mean and spread.

    python benchmarks/train_speed.py --seeds 5            # the default recipe, seeds 0..4
    python benchmarks/train_speed.py --seeds 1 --epochs 3 # a quick look

Figures are printed and saved to benchmarks/results/train_speed_<device>.json and .md.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from train.trainer import Config, Trainer

RESULTS = Path(__file__).resolve().parent / "results"


def run_seed(config: Config, seed: int, runs_dir: Path) -> dict:
    trainer = Trainer(replace(config, seed=seed, out_dir=str(runs_dir / f"seed{seed}"), progress=False))
    tic = time.perf_counter()
    history = trainer.run()
    total = time.perf_counter() - tic
    trainer.write_metrics()
    return {
        "seed": seed,
        "final_test_acc": history[-1]["test_acc"],
        "epoch_seconds": [round(e["seconds"], 2) for e in history],
        "total_seconds": round(total, 1),
        "device": trainer.metrics()["device"],
        "parameters": trainer.metrics()["parameters"],
    }


def summarize(runs: list[dict]) -> dict:
    accs = [r["final_test_acc"] for r in runs]
    totals = [r["total_seconds"] for r in runs]
    return {
        "accuracy_mean": round(statistics.mean(accs), 3),
        "accuracy_std": round(statistics.stdev(accs), 3) if len(accs) > 1 else 0.0,
        "accuracy_min": min(accs),
        "accuracy_max": max(accs),
        "total_seconds_mean": round(statistics.mean(totals), 1),
        "epoch_seconds_mean": round(statistics.mean(s for r in runs for s in r["epoch_seconds"]), 2),
    }


def markdown(config: Config, runs: list[dict], summary: dict) -> str:
    lines = [f"Default recipe, {config.epochs} epochs, on {runs[0]['device']} ({platform.processor() or platform.machine()}, "
             f"{torch.get_num_threads()} threads), {runs[0]['parameters']:,} parameters, torch {torch.__version__}.",
             "", "| seed | final-epoch test accuracy (%) | s / epoch | total s |", "|---|---|---|---|"]
    for r in runs:
        per_epoch = sum(r["epoch_seconds"]) / len(r["epoch_seconds"])
        lines.append(f"| {r['seed']} | {r['final_test_acc']:.2f} | {per_epoch:.1f} | {r['total_seconds']:.0f} |")
    lines.append(f"| mean ± std | {summary['accuracy_mean']:.3f} ± {summary['accuracy_std']:.3f} "
                 f"(min {summary['accuracy_min']:.2f}) | {summary['epoch_seconds_mean']:.1f} | "
                 f"{summary['total_seconds_mean']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="runs with seeds 0..N-1")
    parser.add_argument("--epochs", type=int, default=Config.epochs)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/train_speed"),
                        help="each seed's run folder (checkpoint, metrics) goes here")
    args = parser.parse_args()

    config = Config(epochs=args.epochs, device=args.device)
    runs = []
    for seed in range(args.seeds):
        runs.append(run_seed(config, seed, args.runs_dir))
        r = runs[-1]
        print(f"seed {seed}: final test accuracy {r['final_test_acc']:.2f}% in {r['total_seconds']:.0f} s", flush=True)
    summary = summarize(runs)
    table = markdown(config, runs, summary)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"train_speed_{'cuda' if runs[0]['device'].startswith('cuda') else 'cpu'}"
    stem.with_suffix(".json").write_text(json.dumps({"runs": runs, "summary": summary}, indent=2))
    stem.with_suffix(".md").write_text(table)
    print(f"saved {stem}.json and {stem}.md")


if __name__ == "__main__":
    main()
