"""examples/web under Node: ONNX Runtime Web (WebAssembly) classifies the test set as Python ONNX Runtime does, and
mnist_like.js makes the same 28x28 input of a picture as contract.mnist_like."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image, ImageDraw
from serve_harness import BUNDLE, mnist_test_set
from web_harness import run_node

from mnist_edge.contract import INPUT_NAME, INT8_FILE, MIN_ACCURACY, NUM_CLASSES, ORT_FILE, mnist_like, to_model_input

# ONNX Runtime's x86 and WebAssembly int8 kernels round requantized values differently, which moves a logit by whole
# output quantization steps (by up to 0.15 on 3 test images for the shipped model, up to 0.90 for the first layout's,
# though no prediction changed); so a prediction may differ only where Python's two logits are that close, on a
# handful of images.
NEAR_TIE = 1.0
MAX_DIFFERENCES = 10


def python_logits(model: Path, images: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT_NAME: to_model_input(images)})[0]


def web_logits(model: Path, images: np.ndarray, folder: Path) -> np.ndarray:
    images_file, logits_file = folder / "images.u8", folder / "logits.f32"
    np.ascontiguousarray(images, np.uint8).tofile(images_file)
    run_node("evaluate.mjs", model, images_file, logits_file)
    return np.fromfile(logits_file, np.float32).reshape(len(images), NUM_CLASSES)


def describe(python: np.ndarray, web: np.ndarray, labels: np.ndarray, differing: np.ndarray) -> str:
    """One line per image the engines classify differently."""
    return "\n".join(f"image {i} (label {labels[i]}): Python {python[i].argmax()}, Web {web[i].argmax()}, Python's "
                     f"margin {python[i].max() - python[i, web[i].argmax()]:.3f}" for i in differing)


@pytest.mark.parametrize("model_file", [INT8_FILE, ORT_FILE])
def test_onnx_runtime_web_classifies_the_test_set_as_python_does(model_file, tmp_path):
    images, labels = mnist_test_set(10_000)
    python = python_logits(BUNDLE / model_file, images)
    web = web_logits(BUNDLE / model_file, images, tmp_path)
    accuracy = 100 * (web.argmax(1) == labels).mean()
    assert accuracy >= MIN_ACCURACY, f"ONNX Runtime Web: {accuracy:.2f} % on the test set"
    differing = np.flatnonzero(python.argmax(1) != web.argmax(1))
    margins = python.max(1)[differing] - python[differing, web.argmax(1)[differing]]
    assert len(differing) <= MAX_DIFFERENCES and (margins < NEAR_TIE).all(), describe(python, web, labels, differing)


# --- the same picture, the same input --------------------------------------------------------------------------
def strokes(size: tuple[int, int], lines: list[list[tuple[float, float]]], width: float) -> np.ndarray:
    """Anti-aliased white polylines on black, as a canvas draws them: drawn 4x larger, then area-averaged down."""
    big = Image.new("L", (4 * size[0], 4 * size[1]))
    draw = ImageDraw.Draw(big)
    for line in lines:
        draw.line([(4 * x, 4 * y) for x, y in line], fill=255, width=round(4 * width), joint="curve")
    return np.asarray(big.resize(size, Image.Resampling.BOX))


def pictures() -> dict[str, np.ndarray]:
    """Drawings that reach each branch of the rule: placement, clamping, thin and thick, tall and wide, no ink, and
    crops whose sizes are multiples of 20, where area averages land exactly on half a grey level."""
    rng = np.random.default_rng(0)
    cases = {
        "empty": np.zeros((280, 280), np.uint8),
        "faint (below the ink level)": np.full((280, 280), 25, np.uint8),
        "one pixel": np.pad(np.full((1, 1), 255, np.uint8), ((3, 276), (250, 29))),
        "off-centre seven": strokes((280, 280), [[(200, 10), (270, 10), (225, 90)]], 6),
        "thin diagonal": strokes((280, 280), [[(30, 250), (250, 40)]], 1),
        "tall bar": strokes((280, 280), [[(60, 20), (64, 260)]], 12),
        "wide bar": strokes((280, 280), [[(10, 200), (270, 203)]], 9),
        "thick loop": strokes((280, 280), [[(140, 40), (220, 140), (140, 240), (60, 140), (140, 40)]], 40),
        "non-square canvas": strokes((300, 180), [[(20, 30), (280, 160), (150, 20)]], 14),
        "noise": rng.integers(0, 256, (280, 280), dtype=np.uint8),
    }
    for k, (height, width) in enumerate([(40, 40), (200, 120), (240, 239), (60, 20), (20, 260)]):
        tie = np.zeros((280, 280), np.uint8)
        tie[7:7 + height, 11:11 + width] = rng.integers(26, 256, (height, width))
        cases[f"ties {k}: {height}x{width} crop"] = tie
    images, _ = mnist_test_set(5)
    for k, image in enumerate(images):
        cases[f"MNIST digit {k}, enlarged"] = np.asarray(Image.fromarray(image).resize((280, 280), Image.BILINEAR))
    return cases


def test_mnist_like_js_makes_the_input_contract_mnist_like_makes(tmp_path):
    cases = pictures()
    drawings = [{"width": p.shape[1], "height": p.shape[0], "pixels": base64.b64encode(p.tobytes()).decode()}
                for p in cases.values()]
    (tmp_path / "drawings.json").write_text(json.dumps(drawings))
    run_node("preprocess.mjs", tmp_path / "drawings.json", tmp_path / "inputs.json")
    results = json.loads((tmp_path / "inputs.json").read_text())
    web = {name: np.frombuffer(base64.b64decode(result), np.uint8).reshape(28, 28)
           for name, result in zip(cases, results, strict=True)}
    differing = [name for name, picture in cases.items() if not np.array_equal(web[name], mnist_like(picture))]
    assert not differing, f"mnist_like.js and contract.mnist_like differ on: {', '.join(differing)}"
    assert not web["empty"].any() and not web["faint (below the ink level)"].any()
