"""An interrupted run resumed from its checkpoint ends exactly where an uninterrupted run ends."""
import json

import pytest
import torch

from train import cli
from train.trainer import Config, Trainer


def small_config(out_dir) -> Config:
    return Config(epochs=2, batch_size=64, subset=512, out_dir=str(out_dir), progress=False, threads=1)


def interrupt_at_epoch(monkeypatch, epoch: int) -> None:
    original = Trainer.train_epoch

    def train_epoch(self, current):
        if current == epoch:
            raise KeyboardInterrupt
        return original(self, current)

    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)


def test_resume_matches_uninterrupted_run(tmp_path, monkeypatch):
    straight = Trainer(small_config(tmp_path / "straight"))
    straight.run()

    with monkeypatch.context() as patch:
        interrupt_at_epoch(patch, 2)
        first = Trainer(small_config(tmp_path / "resumed"))
        with pytest.raises(KeyboardInterrupt):
            first.run()
    assert torch.load(first.checkpoint_path, weights_only=False)["epoch"] == 1

    resumed = Trainer(small_config(tmp_path / "resumed"))
    resumed.resume()
    resumed.run()

    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    drop_time = [{k: v for k, v in e.items() if k != "seconds"} for e in straight.history]
    assert drop_time == [{k: v for k, v in e.items() if k != "seconds"} for e in resumed.history]


def test_cli_ctrl_c_exits_cleanly_and_outputs_are_written(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    args = ["--epochs", "2", "--subset", "256", "--batch-size", "64", "--threads", "1", "--out", str(out)]
    with monkeypatch.context() as patch:
        interrupt_at_epoch(patch, 2)
        assert cli.main(args) == 130
    assert "continue with --resume" in capsys.readouterr().err
    assert (out / "checkpoint.pt").is_file() and not (out / "checkpoint.pt.tmp").exists()

    # The resumed run keeps its recipe: a different --epochs on the command line does not change the schedule.
    assert cli.main(["--epochs", "5", "--resume", "--threads", "1", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert metrics["parameters"] < 10_000 and metrics["device"] == "cpu"
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_without_checkpoint_says_so(tmp_path):
    with pytest.raises(SystemExit, match="no checkpoint"):
        Trainer(small_config(tmp_path / "empty")).resume()


def test_resume_from_a_corrupt_checkpoint_says_so(tmp_path, capsys):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="is not a readable checkpoint"):
        cli.main(["--resume", "--out", str(tmp_path)])
