"""The issue's targets as ratios between cases, taken within each repeat so that both sides shared the machine,
and their spread over the repeats."""
from __future__ import annotations

import statistics

from .cases import (
    CEILING_256,
    FLOOR_1,
    KSERVE_1,
    PREDICT_1,
    PREDICT_1_DIRECT,
    PREDICT_256,
    V2_1,
    WORKERS_1,
    WORKERS_2,
    Case,
)

AT = 64  # the concurrency the peer comparisons are read at
TARGETS = {  # name fragment -> (comparison, bound)
    f"CPU per request at {AT}": ("<=", 1 / 3),
    f"throughput at {AT}": (">=", 1.0),
    f"p99 at {AT}": ("<", 1.0),
    "in-process ceiling": (">=", 0.8),
    "batching - no batching": ("<=", None),  # the bound is the configured delay
}


def find(rows: list[dict], case: Case, concurrency: int) -> dict | None:
    return next((r for r in rows if r["case"] == case.name and r["concurrency"] == concurrency), None)


def target_ratios(rows: list[dict], batch_delay_ms: float) -> dict[str, float]:
    """The ratios of one repeat's rows; a ratio whose cases did not run is left out."""
    ratios = {}
    peer = find(rows, KSERVE_1, AT)
    for case in (PREDICT_1, V2_1):
        ours = find(rows, case, AT)
        if ours and peer:
            ratios[f"{case.name} / peer, CPU per request at {AT}"] = (
                ours["server_cpu_us_per_request"] / peer["server_cpu_us_per_request"]
            )
            ratios[f"{case.name} / peer, throughput at {AT}"] = ours["requests_per_s"] / peer["requests_per_s"]
            ratios[f"{case.name} / peer, p99 at {AT}"] = ours["p99_ms"] / peer["p99_ms"]
    floor = find(rows, FLOOR_1, AT)
    if floor and peer:
        ratios[f"grpc.aio floor (no model) CPU per request / the peer's, at {AT}, for reference"] = (
            floor["server_cpu_us_per_request"] / peer["server_cpu_us_per_request"]
        )
    ceiling = find(rows, CEILING_256, 1)
    best = max((r["images_per_s"] for r in rows if r["case"] == PREDICT_256.name), default=None)
    if ceiling and best:
        ratios["Predict 256 images (best concurrency) / in-process ceiling, images per s"] = (
            best / ceiling["images_per_s"]
        )
    one, two = find(rows, WORKERS_1, AT), find(rows, WORKERS_2, AT)
    if one and two:  # for reference: no target, and none of the targets' name fragments
        ratios[f"2 workers / 1 worker, req/s at {AT}"] = two["requests_per_s"] / one["requests_per_s"]
        ratios[f"2 workers / 1 worker, p99 latency at {AT}"] = two["p99_ms"] / one["p99_ms"]
    batching, direct = find(rows, PREDICT_1, 1), find(rows, PREDICT_1_DIRECT, 1)
    if batching and direct:
        ratios[f"p50 at 1, batching - no batching, ms (configured delay {batch_delay_ms} ms)"] = (
            batching["p50_ms"] - direct["p50_ms"]
        )
    return ratios


def spread(per_repeat: list[dict[str, float]]) -> dict[str, dict]:
    """Each ratio's median, extremes and values over the repeats."""
    values: dict[str, list[float]] = {}
    for ratios in per_repeat:
        for name, value in ratios.items():
            values.setdefault(name, []).append(value)
    return {name: {"median": statistics.median(v), "min": min(v), "max": max(v), "values": [round(x, 3) for x in v]}
            for name, v in values.items()}


def verdict(name: str, value: float, batch_delay_ms: float) -> str:
    """'met' or 'MISSED' against the target whose fragment is in the ratio's name; '' if none is."""
    for fragment, (comparison, bound) in TARGETS.items():
        if fragment in name:
            bound = batch_delay_ms if bound is None else bound
            met = {"<=": value <= bound, ">=": value >= bound, "<": value < bound}[comparison]
            return f"{'met' if met else 'MISSED'} (target {comparison} {bound:.3g})"
    return ""
