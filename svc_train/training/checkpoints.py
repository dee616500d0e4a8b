"""Checkpoint files of a model folder: G_<step>.pth / D_<step>.pth, the latest pair, keep_ckpts cleanup,
and fine-tuning loads that tolerate a different speaker count."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from svc_train.checkpoint import read_checkpoint, to_classic_weight_norm_keys, to_parametrized_weight_norm_keys

_NAME = re.compile(r"^([GD])_(\d+)\.pth$")


def checkpoint_step(path: Path) -> int:
    match = _NAME.match(path.name)
    if match is None:
        raise ValueError(f"{path}: not a G_<step>.pth / D_<step>.pth checkpoint name")
    return int(match.group(2))


def checkpoints(model_dir: Path, kind: str) -> list[Path]:
    """``kind`` ("G" or "D") checkpoints of ``model_dir``, by step."""
    found = [p for p in model_dir.glob(f"{kind}_*.pth") if _NAME.match(p.name)]
    return sorted(found, key=checkpoint_step)


def latest_pair(model_dir: Path) -> tuple[Path, Path] | None:
    """The G/D checkpoints of the highest step present for both, or None."""
    g_steps = {checkpoint_step(p): p for p in checkpoints(model_dir, "G")}
    d_steps = {checkpoint_step(p): p for p in checkpoints(model_dir, "D")}
    common = sorted(set(g_steps) & set(d_steps))
    if not common:
        return None
    return g_steps[common[-1]], d_steps[common[-1]]


def clean_checkpoints(model_dir: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest G and D checkpoints (by step); ``*_0.pth`` are never deleted."""
    removed: list[Path] = []
    if keep <= 0:
        return removed
    for kind in ("G", "D"):
        candidates = [p for p in checkpoints(model_dir, kind) if checkpoint_step(p) != 0]
        for path in candidates[:-keep]:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def load_matching_weights(path: Path, model: nn.Module) -> list[str]:
    """Load every tensor of checkpoint ``path`` whose key and shape fit ``model``; keep the rest as initialised.

    For fine-tuning from a pretrained base (``G_0.pth``/``D_0.pth``) whose speaker table
    or other sizes differ. Returns a description of every key that was not loaded.
    """
    state = to_classic_weight_norm_keys(read_checkpoint(path)["model"])
    wanted = model.state_dict()
    if any(k.endswith(".parametrizations.weight.original0") for k in wanted):
        state = to_parametrized_weight_norm_keys(state)
    skipped: list[str] = []
    merged: dict[str, torch.Tensor] = {}
    for key, value in wanted.items():
        given = state.get(key)
        if given is None:
            skipped.append(f"{key}: not in {path.name}")
            merged[key] = value
        elif given.shape != value.shape:
            skipped.append(f"{key}: {list(given.shape)} in {path.name}, model has {list(value.shape)}")
            merged[key] = value
        else:
            merged[key] = given.to(value.dtype)
    model.load_state_dict(merged, strict=True)
    return skipped


__all__ = ["checkpoint_step", "checkpoints", "clean_checkpoints", "latest_pair", "load_matching_weights"]
