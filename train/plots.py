"""curves.png: loss and accuracy per epoch, train (and validation when held out), and the final test figure."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

from mnist_edge.contract import MIN_ACCURACY  # noqa: E402


def plot_curves(history: list[dict], path: Path) -> Path:
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for split in ("train", "val", "test"):  # the test set has one point, after the last epoch
        measured = [e for e in history if f"{split}_loss" in e]
        marker = "." if len(measured) > 1 else "o"
        for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
            if measured:
                ax.plot([e["epoch"] for e in measured], [e[f"{split}_{metric}"] for e in measured], marker=marker,
                        label=split)
    # Train loss is measured on augmented images with label smoothing, so it sits above the test loss.
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss (train: augmented, label-smoothed)", yscale="log")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy", ylim=(97, 100))
    ax_acc.axhline(MIN_ACCURACY, color="grey", linestyle="--", linewidth=1, label=f"{MIN_ACCURACY} % target")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
