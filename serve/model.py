"""The ONNX Runtime session: execution-provider choice, the model contract check, and where nodes run."""
from __future__ import annotations

import collections
import json
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mnist_edge.contract import IMAGE_SHAPE, INPUT_NAME, OUTPUT_NAME
from mnist_edge.serve.errors import StartupError

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
# CPU stays in the CUDA list: ONNX Runtime places operators without CUDA kernels (the int8 ones) there.
PROVIDERS = {"cpu": [CPU], "cuda": [CUDA, CPU]}
# One intra-op thread per run: the batcher runs one batch at a time, and the other cores serve gRPC meanwhile.
DEFAULT_THREADS = 1


def resolve_provider(choice: str) -> str:
    """Turns --provider auto|cpu|cuda into cpu or cuda; asking for CUDA where it is missing is an error."""
    available = ort.get_available_providers()
    if choice == "auto":
        return "cuda" if CUDA in available else "cpu"
    if choice == "cuda" and CUDA not in available:
        raise StartupError(
            "--provider cuda was asked for, but this ONNX Runtime has no CUDA execution provider "
            f"(available: {', '.join(available)}); install onnxruntime-gpu or use --provider cpu"
        )
    return choice


class OnnxModel:
    """One inference session; `run` takes float32 [N, 1, 28, 28] pixels (0-1) and returns [N, 10] logits."""

    def __init__(self, path: Path, provider: str, threads: int = DEFAULT_THREADS) -> None:
        self.path = path
        try:
            self.session = ort.InferenceSession(str(path), session_options(threads), providers=PROVIDERS[provider])
        except Exception as error:  # ONNX Runtime raises several unrelated types for an unloadable file
            raise StartupError(f"ONNX Runtime cannot load {path}: {error}") from None
        self.providers: list[str] = self.session.get_providers()
        if PROVIDERS[provider][0] not in self.providers:
            raise StartupError(f"ONNX Runtime could not start the {PROVIDERS[provider][0]} for {path}")
        self._check_contract()
        self.nodes_by_provider = count_nodes_by_provider(path, threads, PROVIDERS[provider])

    def _check_contract(self) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != [INPUT_NAME] or [o.name for o in outputs] != [OUTPUT_NAME]:
            raise StartupError(
                f"{self.path} must have one input {INPUT_NAME!r} and one output {OUTPUT_NAME!r}, "
                f"not {[i.name for i in inputs]} and {[o.name for o in outputs]}"
            )

    def run(self, images: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]


def session_options(threads: int, profile_prefix: str | None = None) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # 0 lets ONNX Runtime use one thread per core
    # Idle pool threads would otherwise spin for work, burning CPU that gRPC needs, between the short runs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return options


def count_nodes_by_provider(path: Path, threads: int, providers: list[str]) -> dict[str, int]:
    """How many nodes of the optimized graph each provider runs, read from one profiled inference."""
    with tempfile.TemporaryDirectory() as folder:
        options = session_options(threads, profile_prefix=str(Path(folder) / "placement"))
        session = ort.InferenceSession(str(path), options, providers=providers)
        session.run([OUTPUT_NAME], {INPUT_NAME: np.zeros((1, *IMAGE_SHAPE), np.float32)})
        events = json.loads(Path(session.end_profiling()).read_text())
    kernels = {e["name"]: e["args"]["provider"] for e in events if e["name"].endswith("_kernel_time")}
    return dict(collections.Counter(kernels.values()))
