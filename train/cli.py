"""`mnist-edge train` (also `python -m mnist_edge.train`): train the default recipe or a variation of it."""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from typing import TYPE_CHECKING

from mnist_edge.train.config import STEMS, Config, Widths
from mnist_edge.train.errors import TrainError

if TYPE_CHECKING:
    from mnist_edge.train.trainer import Trainer

DEFAULTS = Config()


def parse_widths(text: str) -> Widths:
    """'12,12/12,16,16,16': convolution widths, stages separated by '/'."""
    try:
        widths = tuple(tuple(int(width) for width in stage.split(",")) for stage in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of widths like 12,12/12,16,16,16") from None
    if any(width < 1 for stage in widths for width in stage):
        raise argparse.ArgumentTypeError(f"{text!r}: every width must be at least 1")
    return widths


def format_widths(widths: Widths) -> str:
    return "/".join(",".join(map(str, stage)) for stage in widths)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mnist-edge train", description=__doc__)
    p.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    p.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    p.add_argument("--lr", type=float, default=DEFAULTS.lr, help="peak learning rate")
    p.add_argument("--schedule", choices=["onecycle", "cosine", "constant"], default=DEFAULTS.schedule)
    p.add_argument("--weight-decay", type=float, default=DEFAULTS.weight_decay)
    p.add_argument("--label-smoothing", type=float, default=DEFAULTS.label_smoothing)
    p.add_argument("--max-degrees", type=float, default=DEFAULTS.max_degrees,
                   help="augmentation: rotate by up to +- this many degrees (default %(default)s)")
    p.add_argument("--max-shift", type=float, default=DEFAULTS.max_shift,
                   help="augmentation: shift by up to +- this many pixels (default %(default)s)")
    p.add_argument("--max-scale", type=float, default=DEFAULTS.max_scale,
                   help="augmentation: scale by 1 +- up to this fraction (default %(default)s)")
    p.add_argument("--warmup", type=float, default=DEFAULTS.warmup,
                   help="fraction of the steps rising to the peak learning rate (onecycle)")
    p.add_argument("--widths", type=parse_widths, default=DEFAULTS.widths,
                   help=f"convolution widths, stages separated by '/' (default {format_widths(DEFAULTS.widths)})")
    p.add_argument("--stem", choices=STEMS, default=DEFAULTS.stem,
                   help="s2d: space-to-depth to 14x14x4 before the first stage; conv: the first stage at 28x28")
    p.add_argument("--val-split", type=int, default=DEFAULTS.val_split,
                   help="hold out this many training images for tuning (the test set is never used to tune)")
    p.add_argument("--subset", type=int, default=DEFAULTS.subset,
                   help="train on only the first N training images (quick trials; 0: all)")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=DEFAULTS.device)
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default=DEFAULTS.precision,
                   help="training-step arithmetic; auto: bf16 where the GPU or CPU runs it natively, else fp32")
    p.add_argument("--threads", type=int, default=DEFAULTS.threads, help="CPU threads (0: all cores)")
    p.add_argument("--data-dir", default=None, help="folder with the four MNIST .gz files and SHA256SUMS")
    p.add_argument("--out", dest="out_dir", default=DEFAULTS.out_dir, help="run folder (default %(default)s)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in OUT from its checkpoint.pt, with the recipe it started with")
    p.add_argument("--summary", action="store_true", help="print the layer table and receptive field, then exit")
    return p


def print_summary(config: Config) -> None:
    from torchinfo import summary

    from mnist_edge.train.model import MnistNet, parameter_count, receptive_field

    model = MnistNet(config.widths, stem=config.stem)
    print(summary(model, input_size=(1, 1, 28, 28), col_names=("output_size", "num_params", "kernel_size"),
                  depth=3, verbose=0))
    print(f"trainable parameters: {parameter_count(model):,}")
    print(f"receptive field: {receptive_field(model)} x {receptive_field(model)} pixels (input 28 x 28)")


def start(config: Config, resume: bool) -> Trainer:
    """A Trainer for a new run, or for the run in config.out_dir continued from its checkpoint."""
    from mnist_edge.train.trainer import Trainer, resumed_config  # torch: only past --help

    if resume:
        config = resumed_config(config)
    trainer = Trainer(config)
    if resume:
        trainer.resume()
    return trainer


def config_from_args(args: argparse.Namespace) -> Config:
    """The recipe the parsed flags describe (the flags that are not settings, such as --resume, left out)."""
    known = {f.name for f in fields(Config)}
    return Config(**{k: v for k, v in vars(args).items() if k in known})


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    if args.summary:
        print_summary(config)
        return 0

    from mnist_edge.train.plots import plot_curves

    try:
        trainer = start(config, args.resume)
    except TrainError as err:
        print(f"mnist-edge train: {err}.", file=sys.stderr)
        return 2
    summary = trainer.metrics()
    print(f"training on {summary['device']}: {summary['parameters']:,} parameters, "
          f"{config.epochs} epochs, seed {config.seed}, run folder {trainer.out_dir}", flush=True)
    try:
        history = trainer.run()
    except KeyboardInterrupt:
        done = len(trainer.history)
        print(f"\ninterrupted: {trainer.checkpoint_path} holds {done} finished epoch(s); "
              f"continue with --resume --out {trainer.out_dir}", file=sys.stderr)
        return 130
    trainer.write_metrics()
    plot_curves(history, trainer.out_dir / "curves.png")
    final = history[-1]
    print(f"final test accuracy {final['test_acc']:.2f}% after {final['epoch']} epochs; "
          f"results in {trainer.out_dir}/ (checkpoint.pt, metrics.json, curves.png)")
    return 0
