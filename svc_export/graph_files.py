"""Replacing a graph file by a rewritten model, only when the rewrite passes the ONNX checker."""

from __future__ import annotations

import logging
from pathlib import Path

import onnx

log = logging.getLogger(__name__)


def replace_if_valid(path: Path, model: onnx.ModelProto, suffix: str, failure: str) -> bool:
    """Save `model` next to `path` (with `suffix`), full-check it, and move it over `path`.

    An invalid model is deleted and `path` kept; `failure` (formatted with `name` and `error`)
    is logged as a warning. True when `path` now holds `model`.
    """
    candidate = path.with_suffix(suffix)
    onnx.save(model, str(candidate))
    try:
        onnx.checker.check_model(str(candidate), full_check=True)
    except onnx.checker.ValidationError as exc:
        candidate.unlink()
        log.warning(failure.format(name=path.name, error=exc))
        return False
    candidate.replace(path)
    return True
