"""Reads an image file as one MNIST-style digit: 28x28 uint8 grayscale, white digit on black."""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps

SIDE = 28


def read_digit(path: Path, invert: bool = False) -> bytes:
    """PNG, JPEG, PGM or any format Pillow reads; `invert` for dark ink on light paper.

    A non-square picture is padded with background to a square first, so the digit keeps its shape.
    Raises OSError (Pillow's UnidentifiedImageError is one) when the file cannot be read as an image.
    """
    with Image.open(path) as image:
        gray = ImageOps.exif_transpose(image).convert("L")
    if invert:
        gray = ImageOps.invert(gray)
    side = max(gray.size)
    square = ImageOps.pad(gray, (side, side), color=0)
    return square.resize((SIDE, SIDE), Image.Resampling.LANCZOS).tobytes()
