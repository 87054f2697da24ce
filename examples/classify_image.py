"""Classify one handwritten digit with the exported model, the way a device would.

    python classify_image.py models/mnist_int8.ort digit.png [--invert]

Needs numpy, onnxruntime, Pillow and mnist-edge's contract module (numpy only; `pip install mnist-edge` brings
it without torch): the picture becomes the model's input by the one rule the server uses too
(mnist_edge.contract.mnist_like), so a device and the server give the same digit for the same photo.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import onnxruntime as ort

from mnist_edge.contract import INPUT_NAME, read_digit, to_model_input


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="mnist_int8.ort, mnist_int8.onnx or mnist_fp32.onnx")
    parser.add_argument("image", help="a PNG or JPEG of one digit, white on black (any size)")
    parser.add_argument("--invert", action="store_true", help="the image shows a dark digit on light paper")
    args = parser.parse_args(argv)
    try:
        x = to_model_input(read_digit(args.image, args.invert)[None])
    except OSError as err:
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
    logits = session.run(None, {INPUT_NAME: x})[0][0]
    digit = int(logits.argmax())
    print(f"{digit} (probability {softmax(logits)[digit]:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
