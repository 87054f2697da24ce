"""The figures of one concurrency level, and their medians over the repeats."""
from __future__ import annotations

import statistics

import numpy as np

from .cases import Case
from .load import Load

FIGURES = ("requests", "seconds", "requests_per_s", "images_per_s", "p50_ms", "p90_ms", "p99_ms",
           "server_cpu_us_per_request", "client_cpu_us_per_request", "server_peak_rss_mib")


def row(case: Case, concurrency: int, load: Load, peak_rss_mib: float | None) -> dict:
    """Throughput, latency percentiles and CPU per request of one level, rounded for the results files."""
    n = len(load.latencies)
    p50, p90, p99 = np.percentile(load.latencies, [50, 90, 99]) * 1000
    in_process = case.server == "in-process"  # no client apart from the server
    return {
        "case": case.name, "concurrency": concurrency, "requests": n, "seconds": round(load.seconds, 3),
        "requests_per_s": round(n / load.seconds, 1), "images_per_s": round(n * case.images / load.seconds, 1),
        "p50_ms": round(p50, 3), "p90_ms": round(p90, 3), "p99_ms": round(p99, 3),
        "server_cpu_us_per_request": round(load.server_cpu_s / n * 1e6, 1),
        "client_cpu_us_per_request": None if in_process else round(load.client_cpu_s / n * 1e6, 1),
        "server_peak_rss_mib": None if peak_rss_mib is None else round(peak_rss_mib, 1),
    }


def medians(rows: list[dict]) -> list[dict]:
    """One row per case and concurrency: the median of each figure over the repeats."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["case"], r["concurrency"]), []).append(r)
    return [{"case": case, "concurrency": concurrency,
             **{key: median_or_none([r[key] for r in group]) for key in FIGURES}}
            for (case, concurrency), group in groups.items()]


def median_or_none(values: list[float | None]) -> float | None:
    return None if None in values else statistics.median(values)
