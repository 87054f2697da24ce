"""examples/web in a real browser: Debian's Chromium, driven by playwright-core, draws the ten digits with the mouse,
and the label the page shows must be Python ONNX Runtime's answer for the 28x28 input the page made of the drawing.

The test installs Chromium with apt-get when it is missing (CI runs `make test` as root on Debian), and fails in one
sentence when it cannot: a skipped browser test would pass unnoticed.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess

import numpy as np
import onnxruntime as ort
import pytest
from serve_harness import REPO
from web_harness import WEB, run_node, static_server

from mnist_edge.contract import INPUT_NAME, ORT_FILE, SIDE, mnist_like, to_model_input

SCREENSHOT = WEB / "screenshot.png"  # shown in the README; rewritten only when UPDATE_SCREENSHOT=1, so a test run
# leaves the working tree as it was
INSTALL_TIMEOUT_S = 900
NEAR = 0.02  # probabilities: the page's (WebAssembly kernels) against Python's (x86 kernels), which round apart


def arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, n: int = 24) -> list[list[float]]:
    """Points of an ellipse from angle `start` to `end` (degrees, counter-clockwise from 3 o'clock; y grows down)."""
    angles = [math.radians(start + (end - start) * k / n) for k in range(n + 1)]
    return [[round(cx + rx * math.cos(a), 3), round(cy - ry * math.sin(a), 3)] for a in angles]


# Each digit as strokes (polylines in 0-1 units of the pad), the way a hand draws them.
DIGITS = [
    [arc(0.5, 0.5, 0.2, 0.3, 90, 450)],
    [[[0.42, 0.28], [0.54, 0.2], [0.54, 0.8]]],
    [arc(0.5, 0.36, 0.17, 0.15, 160, -30, 12) + [[0.32, 0.8], [0.7, 0.8]]],
    [arc(0.48, 0.34, 0.16, 0.14, 150, -90, 12) + arc(0.48, 0.64, 0.18, 0.16, 90, -150, 12)[1:]],
    [[[0.56, 0.2], [0.3, 0.6], [0.72, 0.6]], [[0.6, 0.38], [0.6, 0.82]]],
    [[[0.68, 0.2], [0.38, 0.2], [0.35, 0.47]] + arc(0.5, 0.62, 0.18, 0.17, 145, -140, 14)],
    [arc(0.62, 0.5, 0.26, 0.3, 60, 180, 8) + arc(0.52, 0.64, 0.16, 0.16, 180, 540, 20)],
    [[[0.3, 0.22], [0.7, 0.22], [0.46, 0.8]]],
    [arc(0.5, 0.34, 0.14, 0.14, 0, 360, 20) + arc(0.5, 0.65, 0.17, 0.17, 0, -360, 20)],
    [arc(0.5, 0.36, 0.15, 0.15, 0, 360, 20) + [[0.64, 0.36], [0.6, 0.8]]],
]


def chromium() -> str:
    """Debian's chromium, installed with apt-get when it is not on PATH."""
    if shutil.which("chromium") is None:
        install = subprocess.run("apt-get update && apt-get install -y chromium", shell=True, capture_output=True,
                                 env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, timeout=INSTALL_TIMEOUT_S)
        if install.returncode or shutil.which("chromium") is None:
            pytest.fail(f"Chromium is not installed and `apt-get install -y chromium` failed (exit {install.returncode}"
                        "): the browser test needs Debian's chromium package, as root on a Debian machine.",
                        pytrace=False)
    return shutil.which("chromium")


def python_probabilities(inputs: np.ndarray) -> np.ndarray:
    """Softmax of Python ONNX Runtime's logits, for the model file the page loads."""
    session = ort.InferenceSession(str(REPO / "models" / ORT_FILE), providers=["CPUExecutionProvider"])
    logits = session.run(None, {INPUT_NAME: to_model_input(inputs)})[0]
    exp = np.exp(logits - logits.max(1, keepdims=True))
    return exp / exp.sum(1, keepdims=True)


@pytest.mark.slow
def test_the_page_shows_python_onnx_runtimes_answer_for_each_drawn_digit(tmp_path):
    browser = chromium()
    (tmp_path / "drawings.json").write_text(json.dumps(DIGITS))
    screenshot = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") == "1" else tmp_path / "screenshot.png"
    with static_server() as url:
        run_node("browser.mjs", url, tmp_path / "drawings.json", tmp_path / "shown.json", screenshot,
                 "--chromium", browser, timeout=300)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shown = json.loads((tmp_path / "shown.json").read_text())
    records = shown["drawings"]
    inputs = np.array([r["input"] for r in records], np.uint8).reshape(-1, SIDE, SIDE)
    for record, made in zip(records, inputs, strict=True):
        drawing = np.array(record["drawing"], np.uint8).reshape(record["height"], record["width"])
        assert np.array_equal(made, mnist_like(drawing)), "the page's input is not contract.mnist_like's"
    python = python_probabilities(inputs)
    labels = [r["label"] for r in records]
    assert labels == [str(digit) for digit in python.argmax(1)], f"page {labels}, Python {python.argmax(1).tolist()}"
    assert np.allclose([r["probabilities"] for r in records], python, atol=NEAR)
    cleared = shown["cleared"]
    assert cleared["label"] == "" and not any(cleared["input"]) and not any(cleared["bars"])
    assert not any(cleared["drawing"]), "Clear left ink on the pad"
