"""An interrupted run resumed from its checkpoint ends exactly where an uninterrupted run ends."""
import json

import pytest
import torch

from mnist_edge.train import cli
from mnist_edge.train.checkpoint import read_checkpoint
from mnist_edge.train.errors import CheckpointError
from mnist_edge.train.trainer import Config, Trainer


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
    assert len(read_checkpoint(first.checkpoint_path).history) == 1

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


def test_resume_without_checkpoint_raises_a_typed_error(tmp_path):
    with pytest.raises(CheckpointError, match="there is no checkpoint at"):
        Trainer(small_config(tmp_path / "empty")).resume()


def foreign_recipe(path):
    checkpoint = read_checkpoint(path)
    state = torch.load(path, weights_only=True)
    torch.save({**state, "config": {**state["config"], "dropout": 0.5}}, path)
    return checkpoint


@pytest.mark.parametrize("spoil, phrase", [
    (lambda path: path.write_bytes(b"not a checkpoint"), "is not a readable training checkpoint"),
    (lambda path: torch.save(torch.zeros(3), path), "is not a checkpoint written by `mnist-edge train`"),
    (foreign_recipe, "settings this version does not know: dropout"),
])
def test_resume_from_a_bad_checkpoint_is_one_sentence_and_exit_2(spoil, phrase, tmp_path, capsys):
    Trainer(small_config(tmp_path)).save()
    spoil(tmp_path / "checkpoint.pt")
    assert cli.main(["--resume", "--threads", "1", "--out", str(tmp_path)]) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and message.startswith("mnist-edge train: ") and phrase in message, message
