"""Reads the manifest.json beside a model file and checks that the file is the one it describes."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_edge.contract import MANIFEST_FILE, ManifestError, check_manifest, sha256_of
from mnist_edge.serve.errors import StartupError


@dataclass(frozen=True)
class ModelCard:
    """A verified model file and the manifest entries that describe it."""

    path: Path
    sha256: str
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> str:
        return self.manifest["version"]


def load_card(model_path: Path) -> ModelCard:
    """Returns the model's card, or raises StartupError when the manifest is missing or the hash differs."""
    if not model_path.is_file():
        raise StartupError(f"model file {model_path} does not exist")
    manifest_path = model_path.parent / MANIFEST_FILE
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise StartupError(f"{manifest_path} is missing; the server serves only models a manifest describes") from None
    except ValueError as error:
        raise StartupError(f"{manifest_path} is not valid JSON ({error})") from None
    try:
        check_manifest(manifest)
    except ManifestError as error:
        raise StartupError(f"{manifest_path} cannot be used: {error}") from None
    expected = manifest["files"].get(model_path.name, {}).get("sha256")
    if expected is None:
        raise StartupError(f"{manifest_path} has no sha256 for {model_path.name}")
    actual = sha256_of(model_path)
    if actual != expected:
        raise StartupError(
            f"{model_path} has sha256 {actual}, but {manifest_path} says {expected}: refusing a modified model"
        )
    return ModelCard(path=model_path, sha256=actual, manifest=manifest)
