"""The `mnist-edge` dispatcher and `python -m PACKAGE` reach the same subcommands."""
import subprocess
import sys

from mnist_edge import cli


def test_summary_prints_parameters_and_receptive_field(capsys):
    assert cli.main(["train", "--summary"]) == 0
    out = capsys.readouterr().out
    assert "Conv2d" in out and "trainable parameters: 9,042" in out
    assert "receptive field: 32 x 32 pixels" in out


def test_unknown_subcommand_is_a_usage_error(capsys):
    assert cli.main(["nonsense"]) == 2
    assert "unknown subcommand 'nonsense'" in capsys.readouterr().err


def test_console_script_and_module_agree():
    script = subprocess.run([sys.executable, "-m", "mnist_edge.cli", "train", "--help"],
                            capture_output=True, text=True, check=True)
    module = subprocess.run([sys.executable, "-m", "train", "--help"], capture_output=True, text=True, check=True)
    assert script.stdout == module.stdout and "--resume" in module.stdout
