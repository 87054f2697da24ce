"""The training step's arithmetic: bfloat16 autocast where the hardware has it, float32 on request."""
from pathlib import Path

import pytest
import torch

from mnist_edge.train import trainer
from mnist_edge.train.errors import ConfigError
from mnist_edge.train.trainer import Config, Trainer, native_bfloat16, pick_precision

CPU = torch.device("cpu")


def cpu_flags() -> set[str]:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    return set(next(line for line in lines if line.startswith("flags")).split(":", 1)[1].split())


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="reads the CPU's flags from Linux's /proc")
def test_bfloat16_is_native_exactly_where_the_cpu_has_amx_or_avx512_bf16():
    assert native_bfloat16(CPU) == bool({"amx_tile", "avx512_bf16"} & cpu_flags())


@pytest.mark.parametrize("native, expected", [(True, torch.bfloat16), (False, torch.float32)])
def test_auto_follows_the_hardware_and_explicit_choices_win(monkeypatch, native, expected):
    monkeypatch.setattr(trainer, "native_bfloat16", lambda device: native)
    assert pick_precision("auto", CPU) == expected
    assert pick_precision("fp32", CPU) == torch.float32
    assert pick_precision("bf16", CPU) == torch.bfloat16


def test_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown precision 'fp16'"):
        pick_precision("fp16", CPU)


def test_precision_changes_the_arithmetic_and_is_recorded(tmp_path):
    trained = {}
    for precision in ("fp32", "bf16"):
        trainer = Trainer(Config(epochs=1, batch_size=64, subset=256, precision=precision, threads=1,
                                 out_dir=str(tmp_path / precision), progress=False))
        trainer.run()
        assert trainer.metrics()["precision"] == {"fp32": "float32", "bf16": "bfloat16"}[precision]
        trained[precision] = trainer.model.state_dict()
    # Same seed and data: only the rounding of the forward and backward passes differs.
    first = next(name for name, m in trainer.model.named_modules() if isinstance(m, torch.nn.Conv2d)) + ".weight"
    assert not torch.equal(trained["fp32"][first], trained["bf16"][first])
    assert torch.allclose(trained["fp32"][first], trained["bf16"][first], atol=0.05)
