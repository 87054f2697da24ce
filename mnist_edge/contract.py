"""The contract between training, export, serving and every device: what the model takes and gives, how a picture
becomes its input, what the bundle's files are called and what its manifest must hold.

numpy only (Pillow just for reading image files), so that any side, a device example included, can import it.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

# --- the model's input and output ------------------------------------------------------------------------------
INPUT_NAME, OUTPUT_NAME = "image", "logits"
DTYPE = "float32"
SIDE = 28
IMAGE_SHAPE = (1, SIDE, SIDE)  # one image, after the batch dimension
PIXELS = SIDE * SIDE  # bytes of one uint8 image
PIXEL_MAX = 255  # the model takes uint8 pixels / PIXEL_MAX: 0.0 background to 1.0 ink, white digit on black
LABELS = tuple(str(digit) for digit in range(10))
NUM_CLASSES = len(LABELS)
# Pixel statistics of the MNIST training images on the 0-1 scale; the network standardizes with them itself.
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081

# --- the bundle ----------------------------------------------------------------------------------------------
FP32_FILE, INT8_FILE = "mnist_fp32.onnx", "mnist_int8.onnx"
ORT_FILE, HEADER_FILE = "mnist_int8.ort", "mnist_int8.h"
MANIFEST_FILE = "manifest.json"
MODEL_NAME = "mnist"  # the name the model is served under: the manifest's, the v2 API's, Triton's and KServe's
TRITON_REPOSITORY = "model_repository"  # the bundle's Triton model repository folder (export/triton.py)
SERVED_FILES = (INT8_FILE, FP32_FILE, MANIFEST_FILE)  # what a server needs; the wheel ships these
MIN_ACCURACY = 99.4  # percent of the 10,000 test images the int8 model must classify right to ship
MANIFEST_FORMAT = 1
MANIFEST_FIELDS = ("format", "name", "version", "files", "input", "output", "labels", "parameters", "accuracy")

# --- the preprocessing rule (MNIST's own) ------------------------------------------------------------------------
BOX = 20  # the digit's bounding box is scaled to fit BOX x BOX, keeping its aspect ratio
INK = 0.1  # pixels above this (0-1 scale) count as ink when finding the bounding box
PREPROCESSING = (f"white digit on black; the bounding box of pixels above {INK} scaled (area-averaged) to fit "
                 f"{BOX}x{BOX} keeping its aspect ratio, then placed in the {SIDE}x{SIDE} field with its centre of "
                 f"mass at the centre; pixels / {PIXEL_MAX}")


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 pixels [N, 28, 28] (or [N, 784]) -> the model's float32 [N, 1, 28, 28] on the 0-1 scale."""
    images = np.asarray(images)
    return (images.astype(np.float32) / PIXEL_MAX).reshape(len(images), *IMAGE_SHAPE)


def input_spec() -> dict[str, Any]:
    return {"name": INPUT_NAME, "dtype": DTYPE, "shape": ["N", *IMAGE_SHAPE],
            "pixel_scale": f"uint8 / {PIXEL_MAX}, 0.0 to 1.0", "polarity": "white digit on black background",
            "preprocessing": PREPROCESSING,
            "normalization": f"inside the graph (mean {MNIST_MEAN}, std {MNIST_STD}), folded into the first Conv"}


def output_spec() -> dict[str, Any]:
    return {"name": OUTPUT_NAME, "dtype": DTYPE, "shape": ["N", NUM_CLASSES],
            "meaning": "unnormalized class scores; softmax gives probabilities"}


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file: how the manifest (and data/mnist/SHA256SUMS) pin the files they list."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


class ManifestError(ValueError):
    """A manifest this version of mnist-edge cannot read; the message says why in one sentence."""


def check_manifest(manifest: Any) -> None:
    """Raises ManifestError unless the manifest has a known format and every field the contract requires."""
    if not isinstance(manifest, dict):
        raise ManifestError("it is not a JSON object")
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"its format is {manifest.get('format')!r}, and this mnist-edge reads only format "
                            f"{MANIFEST_FORMAT}: export the bundle again with this version")
    missing = [name for name in MANIFEST_FIELDS if name not in manifest]
    if missing:
        raise ManifestError(f"it lacks the field(s) {', '.join(missing)}")


# --- pictures to model input ---------------------------------------------------------------------------------------
# The rule is computed in integers (pixels 0-255, overlaps in whole units), so every sum is exact whatever order a
# library adds in: a port to another language (examples/web/mnist_like.js) gives the same bytes, ties included.
def _half_up(numerator: Any, denominator: Any) -> Any:
    """floor(numerator / denominator + 1/2) in integers: rounding half up, exactly, for ints and int arrays."""
    return (2 * numerator + denominator) // (2 * denominator)


def _area_weights(size_in: int, size_out: int) -> np.ndarray:
    """[size_out, size_in] weights of an area-averaging resize: the overlap of each input pixel with each output one,
    in units of 1/size_out of an input pixel, so each output pixel's weights are integers that sum to size_in."""
    starts = np.arange(size_out)[:, None] * size_in
    edges = np.arange(size_in)[None, :] * size_out
    return np.clip(np.minimum(starts + size_in, edges + size_out) - np.maximum(starts, edges), 0, None)


def _offset(profile: np.ndarray, size: int) -> int:
    """Where a span of `size` pixels with this ink profile starts so that its centre of mass lands on the field's
    centre (rounded half up), kept whole inside the field."""
    mass = int(profile.sum())
    moment = int(profile @ (2 * np.arange(size) + 1))  # twice the mass times the centre of mass
    return min(max(_half_up(SIDE * mass - moment, 2 * mass), 0), SIDE - size)


def mnist_like(gray: np.ndarray) -> np.ndarray:
    """Any grayscale picture of one digit (uint8 [H, W], white on black) -> uint8 [28, 28] made as MNIST's were.

    The ink's bounding box is scaled to fit 20x20 keeping its aspect ratio, then placed in the 28x28 field so that
    its centre of mass sits at the centre (kept whole inside the field). A picture without ink gives all zeros.
    """
    gray = np.asarray(gray)
    ink = gray / PIXEL_MAX > INK
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    field = np.zeros((SIDE, SIDE), np.uint8)
    if rows.size:
        crop = gray[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float64)
        height, width = (max(1, _half_up(BOX * side, max(crop.shape))) for side in crop.shape)
        # Whole numbers below 2**53, so float64 (and its fast matrix product) holds them exactly.
        box = (_area_weights(crop.shape[0], height) @ crop @ _area_weights(crop.shape[1], width).T).astype(np.int64)
        top, left = _offset(box.sum(1), height), _offset(box.sum(0), width)
        field[top:top + height, left:left + width] = _half_up(box, crop.size)  # the mean pixel, 0-255
    return field


def read_digit(path: Path | str, invert: bool = False) -> np.ndarray:
    """An image file (PNG, JPEG, PGM, anything Pillow reads) -> uint8 [28, 28] by `mnist_like`.

    EXIF rotation is honoured; `invert` for a dark digit on light paper. Raises OSError when the file cannot be
    read as an image (Pillow's UnidentifiedImageError is one).
    """
    from PIL import Image, ImageOps  # only readers of files need Pillow

    with Image.open(path) as image:
        gray = ImageOps.exif_transpose(image).convert("L")
    if invert:
        gray = ImageOps.invert(gray)
    return mnist_like(np.asarray(gray))
