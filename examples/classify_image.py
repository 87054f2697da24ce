"""Classify one handwritten digit with the exported model, the way a device would.

    python classify_image.py models/mnist_int8.ort digit.png

Needs only numpy, onnxruntime and Pillow: no torch and nothing from this project. The model takes float32
[N, 1, 28, 28] pixels on the 0-1 scale, white digit on black (MNIST's polarity); it normalizes them itself.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image, UnidentifiedImageError

SIDE = 28


def load_digit(path: str) -> tuple[np.ndarray, bool]:
    """Returns (float32 [1, 1, 28, 28] pixels on the 0-1 scale, whether the image was inverted).

    A dark digit on a light background (a scan, a drawing app) is inverted to MNIST's white on black, judged by
    the image's border, which is background in any centred digit.
    """
    gray = Image.open(path).convert("L")
    if gray.size != (SIDE, SIDE):
        gray = gray.resize((SIDE, SIDE), Image.Resampling.LANCZOS)
    pixels = np.asarray(gray, dtype=np.float32) / 255
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    inverted = bool(border.mean() > 0.5)
    if inverted:
        pixels = 1 - pixels
    return pixels[None, None], inverted


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="mnist_int8.ort, mnist_int8.onnx or mnist_fp32.onnx")
    parser.add_argument("image", help="a PNG or JPEG of one digit (resized to 28 x 28 if needed)")
    args = parser.parse_args(argv)
    try:
        x, inverted = load_digit(args.image)
    except (OSError, UnidentifiedImageError) as err:
        print(f"error: cannot read image {args.image}: {err}", file=sys.stderr)
        return 2
    if not os.path.isfile(args.model):
        print(f"error: model file {args.model} does not exist.", file=sys.stderr)
        return 2
    try:
        session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime's exception types derive from Exception alone
        print(f"error: cannot load model {args.model}: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    logits = session.run(None, {session.get_inputs()[0].name: x})[0][0]
    digit = int(logits.argmax())
    note = " (inverted: dark digit on a light background)" if inverted else ""
    print(f"{digit} (probability {softmax(logits)[digit]:.3f}){note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
