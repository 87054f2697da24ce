"""mnist_edge.contract: the preprocessing rule, the manifest check, and that every path into the model uses them."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image, ImageOps
from serve_harness import MODEL, REPO, copy_bundle, mnist_test_set, run_server_expecting_failure

from mnist_edge import contract
from mnist_edge.contract import ManifestError, check_manifest, mnist_like, read_digit, to_model_input
from mnist_edge.serve import predict
from mnist_edge.v1 import classifier_pb2


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(image.shape) + 0.5
    return (rows * image).sum() / image.sum(), (cols * image).sum() / image.sum()


def test_a_tall_bar_is_scaled_into_20x20_keeping_its_aspect_and_centred():
    picture = np.zeros((300, 200), np.uint8)
    picture[40:200, 150:190] = 255  # 160 x 40 pixels, far off centre
    digit = mnist_like(picture)
    ink_rows, ink_cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
    assert (len(ink_rows), len(ink_cols)) == (20, 5)
    assert np.allclose(centre_of_mass(digit.astype(float)), (14, 14), atol=0.5)


def test_a_picture_without_ink_is_all_background():
    assert not mnist_like(np.full((50, 40), 20, np.uint8)).any()  # 20/255 is below the ink level


def test_mnist_digits_stay_mnist_digits():
    """The rule is the one the dataset was made with: redoing it on test digits keeps the model's accuracy."""
    images, labels = mnist_test_set(1000)
    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    redone = np.stack([mnist_like(image) for image in images])
    logits = session.run(None, {contract.INPUT_NAME: to_model_input(redone)})[0]
    assert (logits.argmax(1) == labels).mean() >= 0.985


def photos(folder: Path) -> list[tuple[Path, bool]]:
    """Sample digits as a device or a person would hand them in: any size, JPEG, dark on light, EXIF-rotated."""
    images, _ = mnist_test_set(3)
    cases = [(REPO / "examples" / "digit_3.png", False)]
    Image.fromarray(images[0]).resize((90, 70)).save(folder / "stretched.jpg", quality=90)
    ImageOps.invert(Image.fromarray(images[1]).resize((64, 64))).save(folder / "paper.png")
    rotated = Image.fromarray(np.ascontiguousarray(np.rot90(images[2], -1)))  # stored turned clockwise
    exif = rotated.getexif()
    exif[0x0112] = 8  # Orientation 8: a viewer turns it back
    rotated.save(folder / "rotated.png", exif=exif)
    return cases + [(folder / "stretched.jpg", False), (folder / "paper.png", True), (folder / "rotated.png", False)]


def example_input(image: Path, invert: bool, tmp_path: Path) -> np.ndarray:
    """The tensor examples/classify_image.py feeds ONNX Runtime, captured from a run of the script."""
    capture = tmp_path / "x.npy"
    probe = "\n".join([
        "import runpy, sys, numpy, onnxruntime",
        "run = onnxruntime.InferenceSession.run",
        f"onnxruntime.InferenceSession.run = lambda s, o, feed: (numpy.save({str(capture)!r}, feed['image']), "
        "run(s, o, feed))[1]",
        "sys.argv = sys.argv[1:]",
        "runpy.run_path(sys.argv[0], run_name='__main__')",
    ])
    command = [sys.executable, "-c", probe, str(REPO / "examples" / "classify_image.py"), str(MODEL), str(image)]
    subprocess.run(command + (["--invert"] if invert else []), check=True, capture_output=True, timeout=60)
    return np.load(capture)


def test_the_device_example_and_mnist_edge_predict_send_the_same_tensor(tmp_path, monkeypatch):
    sent = []

    def capture(client, images):
        sent.extend(images)
        return classifier_pb2.PredictResponse(predictions=[classifier_pb2.Prediction()] * len(images))

    monkeypatch.setattr(predict.ClassifierClient, "predict", capture)
    for image, invert in photos(tmp_path):
        predict.main(["--server", "127.0.0.1:1", *(["--invert"] if invert else []), str(image)])
        server_side = to_model_input(np.frombuffer(sent.pop(), np.uint8)[None])
        assert np.array_equal(example_input(image, invert, tmp_path), server_side), image


def test_exif_rotation_is_honoured(tmp_path):
    *_, (rotated, _) = photos(tmp_path)
    images, _ = mnist_test_set(3)
    assert np.array_equal(read_digit(rotated), mnist_like(images[2]))


@pytest.mark.parametrize("manifest, phrase", [
    ([], "not a JSON object"),
    ({"format": 99}, "its format is 99, and this mnist-edge reads only format 1"),
    ({"format": 1, "name": "mnist"}, "lacks the field(s) version, files"),
])
def test_manifest_check_refuses_what_it_cannot_read(manifest, phrase):
    with pytest.raises(ManifestError, match=None) as refused:
        check_manifest(manifest)
    assert phrase in str(refused.value)


def test_the_shipped_manifest_passes_and_follows_the_contract():
    manifest = json.loads((MODEL.parent / contract.MANIFEST_FILE).read_text())
    check_manifest(manifest)
    assert manifest["labels"] == list(contract.LABELS)
    assert manifest["input"]["name"] == contract.INPUT_NAME and manifest["output"]["name"] == contract.OUTPUT_NAME


def test_serve_refuses_a_manifest_of_an_unknown_format_in_one_sentence(tmp_path):
    model = copy_bundle(tmp_path)
    manifest = json.loads((tmp_path / contract.MANIFEST_FILE).read_text())
    (tmp_path / contract.MANIFEST_FILE).write_text(json.dumps({**manifest, "format": 99}))
    result = run_server_expecting_failure(model=model)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "its format is 99, and this mnist-edge reads only format 1" in result.stderr
