"""Runs one case: its server (or none, for the ceiling) under load at each concurrency level, one row per level."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_edge.contract import to_model_input
from mnist_edge.serve.model import OnnxModel

from .cases import Case
from .figures import row
from .load import load_in_process, load_server
from .messages import request_images, serialized
from .process_stats import peak_rss_mib
from .servers import running_server


@dataclass(frozen=True)
class Levels:
    concurrency: tuple[int, ...]
    requests: int  # bound per level for 1-image cases
    seconds: float  # bound per level

    def count(self, case: Case) -> int:
        """The request bound for `case`: a 20th for 256-image requests (at least 50), which take longer each."""
        return self.requests if case.images == 1 else max(self.requests // 20, 50)


def measure_case(case: Case, levels: Levels, images: np.ndarray, model: OnnxModel, logs: Path) -> list[dict]:
    """The rows of `case`, checked against `model` run in-process on the same images."""
    count = levels.count(case)
    if case.server == "in-process":
        return [row(case, 1, load_in_process(model, images[:case.images], count, levels.seconds), None)]
    batches = request_images(case, images)
    requests = [serialized(case, batch) for batch in batches]
    expected = [model.run(to_model_input(batch)).argmax(axis=1).tolist() for batch in batches]
    with running_server(case, logs) as server:
        loads = [asyncio.run(load_server(server, case, requests, expected, concurrency, count, levels.seconds))
                 for concurrency in levels.concurrency]
        peak_rss = peak_rss_mib(server.process.pid)  # over every level: read before the server stops
    return [row(case, concurrency, load, peak_rss) for concurrency, load in zip(levels.concurrency, loads, strict=True)]
