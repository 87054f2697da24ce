"""The default recipe, trained for its full 15 epochs on this machine, then exported through the gate."""
import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_default_recipe_trains_and_exports_above_99_4(tmp_path):
    run, bundle = tmp_path / "run", tmp_path / "bundle"
    subprocess.run([sys.executable, "-m", "mnist_edge.train", "--out", str(run)], check=True, timeout=1500)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["parameters"] < 10_000
    assert len(metrics["epochs"]) <= 15
    assert metrics["final"]["test_acc"] >= 99.4, metrics["final"]

    export = subprocess.run(
        [sys.executable, "-m", "mnist_edge.export", "--checkpoint", str(run / "checkpoint.pt"), "--out", str(bundle)],
        capture_output=True, text=True, timeout=900,
    )
    assert export.returncode == 0, export.stdout + export.stderr
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["accuracy"]["int8"] >= 99.4
