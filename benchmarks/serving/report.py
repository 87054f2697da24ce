"""The results files: the rows and summary as JSON, a markdown table with the targets, and a latency plot."""
from __future__ import annotations

import json
from pathlib import Path

from machine import features_text
from matplotlib.figure import Figure  # not pyplot: no backend, no global figures

from .cases import CASES
from .targets import verdict

NAME = "serve"  # results/serve_CLASS.{json,md,png}, one set per CPU class (benchmarks/machine.py)
TABLE_COLUMNS = (("case", "case"), ("concurrency", "conc."), ("requests_per_s", "req/s"),
                 ("images_per_s", "images/s"), ("p50_ms", "p50 ms"), ("p90_ms", "p90 ms"), ("p99_ms", "p99 ms"),
                 ("server_cpu_us_per_request", "server CPU us/req"), ("client_cpu_us_per_request", "client CPU us/req"),
                 ("server_peak_rss_mib", "server peak RSS MiB"))


def write_results(folder: Path, info: dict, summary: list[dict], targets: dict[str, dict], rows: list[dict]) -> str:
    """Writes the three files into `folder`; returns the markdown."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{NAME}_{info['machine']['class']}"
    document = {"info": info, "summary": summary, "targets": targets, "rows": rows}
    stem.with_suffix(".json").write_text(json.dumps(document, indent=1) + "\n")
    text = markdown(summary, targets, info)
    stem.with_suffix(".md").write_text(text)
    plot(summary, stem.with_suffix(".png"))
    return text


def markdown(summary: list[dict], targets: dict[str, dict], info: dict) -> str:
    machine = info["machine"]
    lines = [f"Command: `{info['command']}`", "",
             f"{machine['cpu']}, class {machine['class']} ({features_text(machine)}), {machine['cores']} cores; "
             f"ONNX Runtime {info['onnxruntime']}, {info['model']}; medians of {info['repeats']} "
             f"repeats, each level {info['seconds']} s or {info['requests']} requests (256-image: a 20th) after a "
             "warm-up; the load generator shares the CPU with the server. Server CPU is user + system time of the "
             "server process (all threads, and with --workers its workers too) per request, and its peak RSS the sum "
             "over those processes; ONNX Runtime runs with one intra-op thread and no spinning "
             "everywhere. The grpc.aio floor is a server that answers a fixed message without running anything.",
             "",
             "| " + " | ".join(title for _, title in TABLE_COLUMNS) + " |",
             "|" + "---|" * len(TABLE_COLUMNS)]
    lines += ["| " + " | ".join(cell(r[key]) for key, _ in TABLE_COLUMNS) + " |" for r in summary]
    lines += ["", "Targets (ratios taken within each repeat; median, and the range over repeats):", "",
              "| ratio | median | range | verdict on the median |", "|---|---|---|---|"]
    lines += [f"| {name} | {s['median']:.3g} | {s['min']:.3g} to {s['max']:.3g} | "
              f"{verdict(name, s['median'], info['batch_delay_ms'])} |" for name, s in targets.items()]
    return "\n".join(lines) + "\n"


def cell(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def plot(summary: list[dict], path: Path) -> None:
    """p50 and p99 latency against throughput, one line per case, each point labelled with its concurrency."""
    figure = Figure(figsize=(13, 5))
    axes = figure.subplots(1, 2, sharex=True)
    for case in CASES:
        rows = [r for r in summary if r["case"] == case.name]
        if not rows:
            continue
        in_process = case.server == "in-process"  # one point, with no concurrency to label
        for axis, key in zip(axes, ("p50_ms", "p99_ms"), strict=True):
            axis.plot([r["images_per_s"] for r in rows], [r[key] for r in rows], "*" if in_process else "o-",
                      label=case.name)
            for r in [] if in_process else rows:
                axis.annotate(str(r["concurrency"]), (r["images_per_s"], r[key]), fontsize=7,
                              textcoords="offset points", xytext=(3, 3))
    for axis, title in zip(axes, ("p50", "p99"), strict=True):
        axis.set(xscale="log", yscale="log", xlabel="images per second", ylabel=f"{title} latency (ms)",
                 title=f"{title} latency vs throughput (labels: concurrency)")
        axis.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
