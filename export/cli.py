"""`mnist-edge export` (also `python -m mnist_edge.export`): checkpoint -> fp32 and int8 ONNX -> gate -> device bundle.

Exit codes: 0 bundle written, 1 a check refused the model (the accuracy gate among them), 2 bad input.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from mnist_edge.contract import MIN_ACCURACY
from mnist_edge.export.errors import BadInput, CheckFailed
from mnist_edge.export.quantize import FORMATS, METHODS, QuantSettings

if TYPE_CHECKING:
    from mnist_edge.export.pipeline import Outcome

DEFAULTS = QuantSettings()


def percentage(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text} is not a percentage between 0 and 100")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mnist-edge export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="RUN/checkpoint.pt written by mnist-edge train")
    p.add_argument("--out", type=Path, required=True,
                   help="bundle folder, replaced as a whole only if every check passes")
    p.add_argument("--min-accuracy", type=percentage, default=MIN_ACCURACY,
                   help="least int8 test accuracy in percent (default %(default)s)")
    p.add_argument("--calibration-images", type=int, default=DEFAULTS.calibration_images,
                   help="training images used to calibrate the int8 ranges (default %(default)s)")
    p.add_argument("--calibration-method", choices=sorted(METHODS), default=DEFAULTS.method,
                   help="how activation ranges are chosen (default %(default)s)")
    p.add_argument("--per-channel", action=argparse.BooleanOptionalAction, default=DEFAULTS.per_channel,
                   help="one int8 scale per output channel of each Conv weight (default on)")
    p.add_argument("--format", choices=sorted(FORMATS), default=DEFAULTS.format,
                   help="QDQ (QuantizeLinear/DequantizeLinear around float ops) or QOperator (QLinearConv ...)")
    p.add_argument("--data-dir", type=Path, default=None, help="folder with the four MNIST .gz files")
    return p


def print_summary(outcome: Outcome, out: Path) -> None:
    r, nodes, manifest = outcome.results, outcome.nodes, outcome.manifest
    print(f"test accuracy on {len(r.labels):,} images: fp32 {r.fp32_accuracy:.2f} %, int8 {r.int8_accuracy:.2f} %, "
          f"agreement {r.agreement:.2f} %")
    print(f"int8 nodes ({len(nodes.int8)}): {nodes.int8_summary()}")
    print(f"float nodes ({len(nodes.fp32)}): " + (", ".join(f"{n.name} ({n.op_type})" for n in nodes.fp32) or "none"))
    print(f"bundle {out}/ version {manifest['version']}:")
    for name, entry in manifest["files"].items():
        print(f"  {name:<28} {entry['bytes']:>9,} bytes")


def interrupt(signum: int, frame: object) -> None:
    """SIGTERM interrupts like Ctrl-C, so that the scratch folder (mnist-edge-export-*) is removed on the way out."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        return export(args)
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        return export(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def export(args: argparse.Namespace) -> int:
    from mnist_edge.export.pipeline import Options, run_export  # imports torch and onnxruntime: only after --help

    settings = QuantSettings(method=args.calibration_method, format=args.format, per_channel=args.per_channel,
                             calibration_images=args.calibration_images)
    installed = False

    def on_installed() -> None:
        nonlocal installed
        installed = True

    try:
        outcome = run_export(Options(args.checkpoint, args.out, args.min_accuracy, settings, args.data_dir),
                             on_installed=on_installed)
    except BadInput as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except CheckFailed as err:
        print(f"export refused: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if installed:  # interrupted while the scratch folder was being removed: the bundle is whole
            print(f"\nexport interrupted after the bundle was written; {args.out} holds the new bundle.",
                  file=sys.stderr)
            return 0
        print(f"\nexport interrupted; nothing half-written was left in {args.out}.", file=sys.stderr)
        return 130
    try:
        print_summary(outcome, args.out)
    except KeyboardInterrupt:
        print(f"\nexport finished ({args.out} holds the new bundle); interrupted while printing the summary.",
              file=sys.stderr)
    return 0
