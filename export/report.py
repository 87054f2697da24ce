"""report.md with a confusion matrix and a grid of the misclassified test digits, for people to read."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

from mnist_edge.export.evaluate import PARITY_IMAGES, Evaluation  # noqa: E402
from mnist_edge.export.quantize import (  # noqa: E402
    FORMATS,
    INT8_KERNEL_MIN_CHANNELS,
    METHODS,
    PIXEL_LEVELS,
    NodeCensus,
    QuantSettings,
)

CONFUSION_PNG = "confusion_int8.png"
MISCLASSIFIED_PNG = "misclassified_int8.png"
GRID_COLUMNS, GRID_MAX = 12, 120  # a good model misses a few dozen test digits; a weak one, thousands


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """counts[true, predicted]."""
    counts = np.zeros((10, 10), dtype=np.int64)
    np.add.at(counts, (labels, predicted), 1)
    return counts


def plot_confusion(counts: np.ndarray, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    # A log colour scale, so the few errors off the diagonal show next to the ~1,000 hits on it.
    image = ax.imshow(counts + 1, cmap="Blues", norm=matplotlib.colors.LogNorm())
    for (true, pred), n in np.ndenumerate(counts):
        if n:
            ax.text(pred, true, str(n), ha="center", va="center", fontsize=8,
                    color="white" if true == pred else "black")
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true",
           title="int8 model on the 10,000 MNIST test images")
    fig.colorbar(image, ax=ax, label="images + 1 (log scale)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_misclassified(images: np.ndarray, labels: np.ndarray, predicted: np.ndarray, path: Path) -> None:
    wrong = np.flatnonzero(labels != predicted)
    shown = wrong[:GRID_MAX]
    rows = max(1, -(-len(shown) // GRID_COLUMNS))
    fig, axes = plt.subplots(rows, GRID_COLUMNS, figsize=(GRID_COLUMNS * 0.9, rows * 1.05 + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, shown, strict=False):  # the last row may have empty cells
        ax.imshow(images[index], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{labels[index]}→{predicted[index]}", fontsize=9, color="firebrick")
    title = f"misclassified test digits (true→predicted): {len(wrong)}"
    fig.suptitle(title if len(shown) == len(wrong) else f"{title}, first {len(shown)} shown", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def first_layer_note(nodes: NodeCensus) -> str:
    if nodes.float_convolutions():
        return ("The first convolution reads a one-channel image, which suits no int8 kernel: it computes in float "
                "from int8-stored weights.")
    return (f"The pixels enter the first convolution as 0 to {PIXEL_LEVELS} (7 bits): the 16-bit sums of the int8 "
            "kernels of CPUs without VNNI saturate on full-scale 8-bit pixels.")


def markdown(results: Evaluation, nodes: NodeCensus, settings: QuantSettings, sizes: dict[str, int],
             counts: np.ndarray) -> str:
    per_class = 100 * np.diag(counts) / counts.sum(1)
    float_nodes = ", ".join(f"`{node.name}` ({node.op_type})" for node in nodes.fp32) or "none"
    lines = [
        "# MNIST int8 model: test report",
        "",
        "| test set | fp32 ONNX | int8 ONNX | agreement |",
        "|---|---|---|---|",
        f"| {len(results.labels):,} images | {results.fp32_accuracy:.2f} % | {results.int8_accuracy:.2f} % "
        f"| {results.agreement:.2f} % |",
        "",
        f"PyTorch and fp32 ONNX agree on every prediction of {PARITY_IMAGES:,} test images; max logit difference "
        f"{results.parity_max_diff:.1e}.",
        "",
        "## Quantization",
        "",
        f"Static, {FORMATS[settings.format].name} format, {'per-channel' if settings.per_channel else 'per-tensor'} "
        f"{settings.weight_type.name} weights, {settings.activation_type.name} activations, "
        f"{METHODS[settings.method].name} calibration on {settings.calibration_images:,} MNIST training images.",
        "",
        "Two exact rewrites make the int8 model fast on ONNX Runtime's CPU kernels: the input normalization is folded "
        "into the first convolution, and int8 convolutions narrower than "
        f"{INT8_KERNEL_MIN_CHANNELS} output channels, the least ONNX Runtime's fast int8 convolution takes, get "
        "all-zero filters up to that width. The fp32 model has the folded normalization too.",
        "",
        first_layer_note(nodes),
        "",
        f"- int8 nodes ({len(nodes.int8)}): {nodes.int8_summary()}",
        f"- float nodes ({len(nodes.fp32)}): {float_nodes}",
        "",
        "## Files",
        "",
        "| file | bytes |",
        "|---|---|",
        *(f"| `{name}` | {size:,} |" for name, size in sizes.items()),
        "",
        "## Accuracy per digit (int8)",
        "",
        "| digit | " + " | ".join(str(d) for d in range(10)) + " |",
        "|---|" + "---|" * 10,
        "| accuracy % | " + " | ".join(f"{a:.1f}" for a in per_class) + " |",
        "",
        f"![confusion matrix]({CONFUSION_PNG})",
        "",
        f"![misclassified test digits]({MISCLASSIFIED_PNG})",
        "",
    ]
    return "\n".join(lines)


def write_report(folder: Path, images: np.ndarray, results: Evaluation, nodes: NodeCensus,
                 settings: QuantSettings) -> Path:
    """Writes report.md and its two images into folder; images: the uint8 test images [N, 28, 28]."""
    sizes = {path.name: path.stat().st_size for path in sorted(folder.iterdir())}
    counts = confusion_matrix(results.labels, results.int8)
    plot_confusion(counts, folder / CONFUSION_PNG)
    plot_misclassified(images, results.labels, results.int8, folder / MISCLASSIFIED_PNG)
    path = folder / "report.md"
    path.write_text(markdown(results, nodes, settings, sizes, counts))
    return path
