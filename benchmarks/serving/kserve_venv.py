"""The KServe peer's virtual environment, .venv-kserve, created on first use."""
from __future__ import annotations

import subprocess
import sys

import onnxruntime as ort

from .paths import KSERVE_VENV

KSERVE_PACKAGE = "kserve==0.21.0"
KSERVE_PYTHON = KSERVE_VENV / "bin" / "python"


def ensure_kserve_venv() -> str | None:
    """Creates the environment with KServe and this ONNX Runtime unless it exists; returns why not if that fails."""
    if KSERVE_PYTHON.exists():
        return None
    print(f"installing {KSERVE_PACKAGE} into {KSERVE_VENV.name} (once)", flush=True)
    # The same ONNX Runtime as ours, so that the comparison is of the servers, not of the runtimes.
    steps = ([sys.executable, "-m", "venv", str(KSERVE_VENV)],
             [str(KSERVE_PYTHON), "-m", "pip", "install", "--quiet", KSERVE_PACKAGE, f"onnxruntime=={ort.__version__}"])
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            return f"{' '.join(step[:4])} failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}"
    return None
