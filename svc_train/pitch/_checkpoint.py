"""Pitch-network checkpoints: weights shipped inside a pip wheel, and safe reading.

Checkpoints are untrusted pickles: tensors and plain data only.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import pickle
from pathlib import Path
from typing import Any

import torch

_READ_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError)


def read_checkpoint(path: Path, network: str, hint: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with a clear error naming the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except _READ_ERRORS as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(
            f"{path}: cannot read it as an {network} checkpoint of tensors and plain data ({reason}). {hint}"
        ) from error


def bundled_weights(relative: str, *, release: str, network: str, sha256: str | None, hint: str) -> Path:
    """Path of ``relative`` (``"<package>/assets/<file>"``) inside an installed wheel, found
    without importing the package (its import may need torchaudio).

    ``release`` (``"torchfcpe 0.0.4"``) names the wheel in the sha256 error; ``sha256=None``
    skips the check. A missing file is a FileNotFoundError ending in ``hint``.
    """
    package = relative.split("/", 1)[0]
    candidates: list[Path] = []
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p).parent / relative for p in spec.submodule_search_locations]
    try:
        for entry in importlib.metadata.files(package) or []:
            if str(entry).replace("\\", "/") == relative:
                candidates.append(Path(entry.locate()))
    except importlib.metadata.PackageNotFoundError:
        pass
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(f"{network} weights `{relative}` not found. {hint}")
    if sha256 is not None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != sha256:
            raise ValueError(f"{path}: sha256 {digest} is not {release}'s {sha256}. {hint}")
    return path


def require_checkpoint_file(path: Path, network: str, package: str, hint: str) -> None:
    """A clear FileNotFoundError where an explicit checkpoint path is not a file."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{network} checkpoint not found: {path}. Leave --checkpoint out to use the {package} wheel's "
            f"weights. {hint}"
        )
