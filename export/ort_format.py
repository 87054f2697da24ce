"""ONNX to ORT format, for ONNX Runtime's minimal (mobile) build, with the operator list for a reduced build."""
from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
from pathlib import Path

from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

CONFIG_NAME = "required_operators.config"


def convert_to_ort(onnx_path: Path, out_dir: Path) -> Path:
    """Writes out_dir/<stem>.ort and out_dir/required_operators.config; returns the .ort path."""
    ort_path, config = out_dir / f"{onnx_path.stem}.ort", out_dir / CONFIG_NAME
    with tempfile.TemporaryDirectory(prefix="mnist-edge-ort-") as scratch:
        # The converter takes every .onnx file in a folder; given one file it would name the config after it.
        shutil.copyfile(onnx_path, Path(scratch) / onnx_path.name)
        logging.getLogger("ort_format_model.utils").setLevel(logging.WARNING)
        with contextlib.redirect_stdout(io.StringIO()):  # it narrates every step
            convert_onnx_models_to_ort(Path(scratch), output_dir=out_dir,
                                       optimization_styles=[OptimizationStyle.Fixed])
    # The config names the models it was made from by their full (temporary) paths: keep just the file name.
    lines = config.read_text().splitlines()
    config.write_text("".join(f"# - {ort_path.name}\n" if line.startswith("# - ") else f"{line}\n" for line in lines))
    return ort_path
