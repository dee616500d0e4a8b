"""Safe reading of pitch-network checkpoints (untrusted pickles: tensors and plain data only)."""

from __future__ import annotations

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
