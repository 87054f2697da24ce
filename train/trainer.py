"""The training loop: the whole dataset as one tensor on the device, batched augmentation, SGD with a
one-cycle schedule, an atomic checkpoint after every epoch and a resume that continues bit for bit."""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from mnist_edge.contract import PIXEL_MAX
from mnist_edge.train.augment import random_affine
from mnist_edge.train.checkpoint import Checkpoint, read_checkpoint, save_checkpoint
from mnist_edge.train.config import Config
from mnist_edge.train.data import load_split
from mnist_edge.train.errors import ConfigError
from mnist_edge.train.model import MnistNet, parameter_count


def resumed_config(config: Config) -> Config:
    """The recipe the interrupted run started with (so the schedule continues as planned), keeping only where
    and how this process runs from `config`."""
    saved = read_checkpoint(Path(config.out_dir) / "checkpoint.pt").config
    return replace(saved, out_dir=config.out_dir, device=config.device, threads=config.threads,
                   progress=config.progress)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but PyTorch sees no CUDA GPU on this machine")
    return torch.device(name)


def native_bfloat16(device: torch.device) -> bool:
    """Whether bfloat16 runs in hardware here: any CUDA GPU, or a CPU with AMX or AVX512-BF16 (used by oneDNN)."""
    if device.type == "cuda":
        return True
    cpu = torch.cpu
    return any(getattr(cpu, probe, lambda: False)() for probe in ("_is_amx_tile_supported",
                                                                 "_is_avx512_bf16_supported"))


def pick_precision(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        name = "bf16" if native_bfloat16(device) else "fp32"
    if name not in ("bf16", "fp32"):
        raise ConfigError(f"unknown precision {name!r}: choose auto, bf16 or fp32")
    return torch.bfloat16 if name == "bf16" else torch.float32


class Split:
    """Images (uint8, on the device) and labels of one split."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> None:
        self.images = images.to(device).unsqueeze(1)
        self.labels = labels.to(device)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index].float().div_(PIXEL_MAX), self.labels[index]


def load_splits(config: Config, device: torch.device) -> dict[str, Split]:
    images, labels = load_split(train=True, data_dir=config.data_dir)
    if config.subset:
        images, labels = images[: config.subset], labels[: config.subset]
    splits = {}
    if config.val_split:
        # A fixed permutation (not the run's seed) so every run of a sweep tunes on the same images.
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(12345))
        held, kept = order[: config.val_split], order[config.val_split :]
        splits["val"] = Split(images[held], labels[held], device)
        images, labels = images[kept], labels[kept]
    splits["train"] = Split(images, labels, device)
    splits["test"] = Split(*load_split(train=False, data_dir=config.data_dir), device=device)
    return splits


def memory_format(device: torch.device, stem: str) -> torch.memory_format:
    """channels_last on a GPU, and on the CPU for the space-to-depth network, whose training step oneDNN ran 1.2x
    faster in it; the first layout keeps the plain layout on the CPU, in which its measured figures were made."""
    return torch.channels_last if device.type == "cuda" or stem == "s2d" else torch.contiguous_format


def make_scheduler(config: Config, optimizer: torch.optim.Optimizer, total_steps: int):
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=total_steps, pct_start=config.warmup,
            div_factor=10, final_div_factor=100,
        )
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if config.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    raise ConfigError(f"unknown schedule {config.schedule!r}: choose onecycle, cosine or constant")


@torch.no_grad()
def evaluate(model: torch.nn.Module, split: Split, batch_size: int = 2000) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy (percent) over a split."""
    model.eval()
    loss, correct = 0.0, 0
    for start in range(0, len(split), batch_size):
        x, y = split.batch(torch.arange(start, min(start + batch_size, len(split)), device=split.labels.device))
        logits = model(x).float()
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    return loss / len(split), 100.0 * correct / len(split)


class Trainer:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.device = pick_device(config.device)
        if self.device.type == "cpu":
            torch.set_num_threads(config.threads or os.cpu_count() or 1)
        torch.manual_seed(config.seed)
        self.generator = torch.Generator(self.device).manual_seed(config.seed)
        self.splits = load_splits(config, self.device)
        self.steps_per_epoch = -(-len(self.splits["train"]) // config.batch_size)
        self.memory_format = memory_format(self.device, config.stem)
        self.model = MnistNet(config.widths, stem=config.stem).to(self.device, memory_format=self.memory_format)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True,
            weight_decay=config.weight_decay,
        )
        self.scheduler = make_scheduler(config, self.optimizer, config.epochs * self.steps_per_epoch)
        self.history: list[dict] = []
        self.out_dir = Path(config.out_dir)
        # bfloat16 autocast: 1.6x faster training steps than float32 on a CPU with AMX (measured); a CPU without
        # native bfloat16 would emulate it slower than float32, so "auto" keeps float32 there.
        self.dtype = pick_precision(config.precision, self.device)
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.dtype == torch.bfloat16)

    # --- checkpoints -------------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def save(self) -> None:
        save_checkpoint(Checkpoint(self.config, self.model.state_dict(), self.optimizer.state_dict(),
                                   self.scheduler.state_dict(), self.generator.get_state(), self.history),
                        self.checkpoint_path)

    def resume(self) -> None:
        checkpoint = read_checkpoint(self.checkpoint_path)
        self.model.load_state_dict(checkpoint.model)
        self.optimizer.load_state_dict(checkpoint.optimizer)
        self.scheduler.load_state_dict(checkpoint.scheduler)
        self.generator.set_state(checkpoint.generator.cpu())
        self.history = checkpoint.history

    # --- training ----------------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> tuple[float, float]:
        cfg, split = self.config, self.splits["train"]
        self.model.train()
        order = torch.randperm(len(split), generator=self.generator, device=self.device)
        batches = order.split(cfg.batch_size)
        bar = tqdm(batches, desc=f"epoch {epoch}/{cfg.epochs}", disable=not cfg.progress, leave=False)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen, start = 0, time.perf_counter()
        for step, index in enumerate(bar):
            x, y = split.batch(index)
            x = random_affine(x, self.generator, cfg.max_degrees, cfg.max_shift, cfg.max_scale)
            with self.autocast:
                logits = self.model(x.contiguous(memory_format=self.memory_format))
                loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            # Accumulate on the device: a .item() per step would synchronize a GPU every batch.
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            if cfg.progress and step % 20 == 0:
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}", acc=f"{100 * correct.item() / seen:.2f}",
                                img_s=f"{seen / (time.perf_counter() - start):.0f}")
        return loss_sum.item() / seen, 100.0 * correct.item() / seen

    def run(self) -> list[dict]:
        started = time.perf_counter() - sum(e["seconds"] for e in self.history)
        for epoch in range(len(self.history) + 1, self.config.epochs + 1):
            tic = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            train_loss, train_acc = self.train_epoch(epoch)
            record = {"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_acc": train_acc}
            # The test set is measured once, after the last epoch: its figure is reported, never watched.
            for name in ("val", "test") if epoch == self.config.epochs else ("val",):
                if name in self.splits:
                    record[f"{name}_loss"], record[f"{name}_acc"] = evaluate(self.model, self.splits[name])
            record["seconds"] = time.perf_counter() - tic
            self.history.append(record)
            self.save()
            print(format_epoch(record, self.config.epochs), flush=True)
        self.wall_seconds = time.perf_counter() - started
        return self.history

    def metrics(self) -> dict:
        final = self.history[-1] if self.history else {}
        return {
            "final": final,
            "epochs": self.history,
            "parameters": parameter_count(self.model),
            "device": device_name(self.device),
            "threads": torch.get_num_threads() if self.device.type == "cpu" else None,
            "precision": str(self.dtype).removeprefix("torch."),
            "wall_seconds": getattr(self, "wall_seconds", None),
            "torch": torch.__version__,
            "config": asdict(self.config),
        }

    def write_metrics(self) -> Path:
        path = self.out_dir / "metrics.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.metrics(), indent=2))
        os.replace(tmp, path)
        return path


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


def format_epoch(record: dict, epochs: int) -> str:
    parts = [f"epoch {record['epoch']:>2}/{epochs}",
             f"train loss {record['train_loss']:.4f} acc {record['train_acc']:.2f}%"]
    for name in ("val", "test"):
        if f"{name}_acc" in record:
            parts.append(f"{name} loss {record[f'{name}_loss']:.4f} acc {record[f'{name}_acc']:.2f}%")
    parts += [f"lr {record['lr']:.4f}", f"{record['seconds']:.1f}s"]
    return " | ".join(parts)
