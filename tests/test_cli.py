"""The `mnist-edge` console script and `python -m mnist_edge.PACKAGE` reach the same subcommands."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_edge import cli

# The script pip installed beside this interpreter (the venv's bin/), not whichever one PATH finds first.
SCRIPT = Path(sys.executable).parent / "mnist-edge"
MODULES = {"train": "mnist_edge.train", "export": "mnist_edge.export", "serve": "mnist_edge.serve",
           "predict": "mnist_edge.serve.predict"}


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_summary_prints_parameters_and_receptive_field(capsys):
    assert cli.main(["train", "--summary"]) == 0
    out = capsys.readouterr().out
    assert "Conv2d" in out and "trainable parameters:" in out and "receptive field:" in out


def test_unknown_subcommand_is_a_usage_error(capsys):
    assert cli.main(["nonsense"]) == 2
    assert "unknown subcommand 'nonsense'" in capsys.readouterr().err


def test_console_script_is_installed_and_lists_the_subcommands():
    assert shutil.which(SCRIPT.name, path=str(SCRIPT.parent)), f"{SCRIPT} is not installed: pip install -e ."
    listing = run(str(SCRIPT), "--help")
    assert listing.returncode == 0
    assert all(f"  {name} " in listing.stdout for name in MODULES), listing.stdout
    assert run(str(SCRIPT)).returncode == 2  # no subcommand: usage, and a usage error


@pytest.mark.parametrize("name", MODULES)
def test_console_script_and_module_print_the_same_help(name):
    script, module = run(str(SCRIPT), name, "--help"), run(sys.executable, "-m", MODULES[name], "--help")
    assert script.returncode == module.returncode == 0, script.stderr + module.stderr
    assert script.stdout == module.stdout and "--help" in script.stdout


@pytest.mark.parametrize("name", ["train", "export"])
def test_help_answers_before_torch_is_imported(name):
    """Torch takes seconds to import: --help and usage errors must not wait for it."""
    code = "\n".join([
        "import contextlib, io, sys",
        f"from mnist_edge.{name}.cli import main",
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):",
        "    main(['--help'])",
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:3]",
    ])
    result = run(sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr


def test_train_flags_become_the_recipe():
    from mnist_edge.train.cli import build_parser, config_from_args

    flags = ["--max-degrees", "5", "--max-shift", "1", "--max-scale", "0.05", "--stem", "s2d", "--resume"]
    config = config_from_args(build_parser().parse_args(flags))
    assert (config.max_degrees, config.max_shift, config.max_scale, config.stem) == (5.0, 1.0, 0.05, "s2d")
    assert not hasattr(config, "resume")  # how to start, not what to train
