"""The training step's arithmetic: bfloat16 autocast where the hardware has it, float32 on request."""
import pytest
import torch

from train.trainer import Config, Trainer, native_bfloat16, pick_precision

CPU = torch.device("cpu")


def test_auto_picks_bfloat16_only_where_it_is_native():
    assert pick_precision("auto", CPU) == (torch.bfloat16 if native_bfloat16(CPU) else torch.float32)
    assert pick_precision("fp32", CPU) == torch.float32
    assert pick_precision("bf16", CPU) == torch.bfloat16


def test_unknown_precision_is_an_error():
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
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
    first = "features.1.0.weight"
    assert not torch.equal(trained["fp32"][first], trained["bf16"][first])
    assert torch.allclose(trained["fp32"][first], trained["bf16"][first], atol=0.05)
