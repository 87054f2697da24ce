"""Where the benchmark finds its model and data, and where it puts its results."""
from __future__ import annotations

from pathlib import Path

from mnist_edge.contract import INT8_FILE

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / INT8_FILE  # the model every case runs
MNIST = REPO / "data" / "mnist"
RESULTS = REPO / "benchmarks" / "results"
KSERVE_VENV = REPO / ".venv-kserve"  # the peer's own environment: KServe pins packages that ours do not share
