"""Dispatches `mnist-edge SUBCOMMAND ...` to the package that owns it.

Each subcommand's module is imported only when it is used, so `mnist-edge serve` never imports torch.
"""
from __future__ import annotations

import importlib
import sys

SUBCOMMANDS = {
    "train": ("mnist_edge.train.cli", "train the CNN (PyTorch)"),
    "export": ("mnist_edge.export.cli", "export ONNX, quantize to int8, gate on test accuracy, write the bundle"),
    "serve": ("mnist_edge.serve.cli", "serve the ONNX model over gRPC"),
    "predict": ("mnist_edge.serve.predict", "classify image files through a running server"),
}


def usage() -> str:
    lines = ["usage: mnist-edge SUBCOMMAND [options]   (mnist-edge SUBCOMMAND --help for its options)", ""]
    lines += [f"  {name:<9} {text}" for name, (_, text) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"mnist-edge: unknown subcommand {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
