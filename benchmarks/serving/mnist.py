"""The MNIST test images, read from the gzip files vendored in data/mnist/ with numpy alone (no torch)."""
from __future__ import annotations

import gzip

import numpy as np

from mnist_edge.contract import SIDE

from .paths import MNIST

HEADER_BYTES = 16  # of an idx3 file: magic number, count, rows, columns


def mnist_test_images(count: int) -> np.ndarray:
    """The first `count` test images, uint8 [count, 28, 28] (fewer if the test set has fewer)."""
    with gzip.open(MNIST / "t10k-images-idx3-ubyte.gz") as file:
        images = np.frombuffer(file.read(), np.uint8, offset=HEADER_BYTES).reshape(-1, SIDE, SIDE)
    return images[:count]
