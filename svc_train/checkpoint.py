"""so-vits-svc checkpoints: load/save G and D in its layout, both weight-norm key styles, compress.

A checkpoint is a dict with `model` (state dict), `iteration`, `optimizer` (state dict or
None) and `learning_rate`, read with `torch.load(weights_only=True)` (never executing
code from the file). Weight-normalised layers may be stored as `<layer>.weight_g` /
`<layer>.weight_v` (classic, what so-vits-svc writes) or as
`<layer>.parametrizations.weight.original0` / `original1` (newer PyTorch); both load.
The helpers take any `nn.Module`, so the discriminator uses them as well.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from svc_runtime.atomic import atomic_output
from svc_runtime.errors import UsageError
from svc_train.config import SvcConfig
from svc_train.models.synthesizer import SynthesizerTrn
from svc_train.safe_pickle import read_weights_only
from svc_train.weight_norm import (
    fold_module as remove_weight_norm,  # the public name of svc_train's fold
)

CHECKPOINT_KEYS = ("model", "iteration", "optimizer", "learning_rate")
_PARAM_G = ".parametrizations.weight.original0"
_PARAM_V = ".parametrizations.weight.original1"


class CheckpointError(UsageError):
    """A checkpoint that cannot be used; the message names the file and the offending keys."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a so-vits-svc checkpoint dict safely (tensors and plain data only) on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (expected a so-vits-svc G_*.pth / D_*.pth)")
    data = read_weights_only(path, "a so-vits-svc checkpoint", CheckpointError)
    if not isinstance(data, Mapping) or "model" not in data:
        keys = sorted(data) if isinstance(data, Mapping) else type(data).__name__
        raise CheckpointError(f"{path}: not a so-vits-svc checkpoint (needs a 'model' state dict; found {keys})")
    if not isinstance(data["model"], Mapping):
        raise CheckpointError(f"{path}: 'model' must be a state dict, got {type(data['model']).__name__}")
    return dict(data)


def to_classic_weight_norm_keys(state_dict: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """Rename `parametrizations.weight.original0/1` keys to `weight_g` / `weight_v` (others unchanged)."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state_dict.items():
        if key.endswith(_PARAM_G):
            key = key[: -len(_PARAM_G)] + ".weight_g"
        elif key.endswith(_PARAM_V):
            key = key[: -len(_PARAM_V)] + ".weight_v"
        out[key] = value
    return out


def to_parametrized_weight_norm_keys(state_dict: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """Rename `weight_g` / `weight_v` keys to the `parametrizations.weight.original0/1` style."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state_dict.items():
        if key.endswith(".weight_g"):
            key = key[: -len(".weight_g")] + _PARAM_G
        elif key.endswith(".weight_v"):
            key = key[: -len(".weight_v")] + _PARAM_V
        out[key] = value
    return out


def load_state_dict_checked(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "<state>",
                            ignore_missing: tuple[str, ...] = ()) -> None:
    """Load `state_dict` into `model` (either weight-norm style), failing with the offending keys named.

    Every model key must be present with the same shape, and the file may hold no extra
    keys; keys starting with a prefix in `ignore_missing` may be absent (kept as initialised).
    """
    wanted = model.state_dict()
    given = to_classic_weight_norm_keys(state_dict)
    if any(k.endswith(_PARAM_G) for k in wanted):  # a model built with parametrized weight norm
        given = to_parametrized_weight_norm_keys(given)
    missing = [k for k in wanted if k not in given and not k.startswith(ignore_missing)]
    unexpected = [k for k in given if k not in wanted]
    mismatched = [f"{k}: file {list(given[k].shape)} vs model {list(wanted[k].shape)}"
                  for k in wanted if k in given and given[k].shape != wanted[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_preview(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_preview(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): {_preview(mismatched)}")
    if problems:
        raise CheckpointError(f"{source} does not fit the model built from the config ("
                              + "; ".join(problems) + "). Check that the config.json belongs to this checkpoint.")
    merged = {k: given.get(k, v) for k, v in wanted.items()}
    model.load_state_dict(merged, strict=True)


def _preview(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    ignore_missing: tuple[str, ...] = ()) -> tuple[int, float | None]:
    """Load a G or D checkpoint into `model` (and `optimizer` when given and stored).

    Returns (iteration, learning_rate). Tensors are cast to the model's dtype.
    """
    data = read_checkpoint(path)
    load_state_dict_checked(model, data["model"], str(path), ignore_missing=ignore_missing)
    if optimizer is not None and data.get("optimizer") is not None:
        optimizer.load_state_dict(data["optimizer"])
    return int(data.get("iteration", 0)), data.get("learning_rate")


def save_checkpoint(path: str | Path, model: nn.Module, iteration: int, learning_rate: float,
                    optimizer: torch.optim.Optimizer | Mapping | None = None,
                    key_style: str = "classic") -> None:
    """Write `model` in so-vits-svc's layout, atomically (`model`, `iteration`, `optimizer`, `learning_rate`).

    key_style "classic" writes `weight_g`/`weight_v` (loads in so-vits-svc 4.1);
    "parametrizations" writes `parametrizations.weight.original0/1`.
    """
    module = model.module if hasattr(model, "module") else model  # DDP
    state = to_classic_weight_norm_keys(module.state_dict())
    if key_style == "parametrizations":
        state = to_parametrized_weight_norm_keys(state)
    elif key_style != "classic":
        raise ValueError(f"key_style must be 'classic' or 'parametrizations', got {key_style!r}")
    if isinstance(optimizer, torch.optim.Optimizer):
        optimizer = optimizer.state_dict()
    _atomic_save({"model": state, "iteration": int(iteration), "optimizer": optimizer,
                  "learning_rate": float(learning_rate)}, Path(path))


def _atomic_save(obj: Any, path: Path) -> None:
    with atomic_output(path) as handle:
        torch.save(obj, handle)


def build_generator(config: SvcConfig | str | Path) -> SynthesizerTrn:
    """A freshly initialised generator for `config` (a SvcConfig or a config.json path)."""
    if not isinstance(config, SvcConfig):
        config = SvcConfig.load(config)
    return SynthesizerTrn.from_config(config)


def load_generator(checkpoint_path: str | Path, config_path: str | Path | SvcConfig) -> SynthesizerTrn:
    """so-vits-svc 4.1 `G_*.pth` + `config.json` -> SynthesizerTrn in eval mode (float32, CPU).

    The posterior encoder `enc_q` is training-only; checkpoints stripped of it
    (so-vits-svc's compress) still load.
    """
    config = config_path if isinstance(config_path, SvcConfig) else SvcConfig.load(config_path)
    model = SynthesizerTrn.from_config(config)
    data = read_checkpoint(checkpoint_path)
    load_state_dict_checked(model, {k: v.float() for k, v in data["model"].items()}, str(checkpoint_path),
                            ignore_missing=("enc_q.",))
    return model.eval()


def compress(in_path: str | Path, out_path: str | Path, half: bool = False) -> None:
    """A release copy of a generator checkpoint, as so-vits-svc's compress_model.py makes.

    Strips the optimizer state (`optimizer` None) and the training-only posterior encoder
    (`enc_q.*`); with half=True stores float16 weights. `load_generator` reads the result.
    """
    data = read_checkpoint(in_path)
    state = OrderedDict((k, v.half() if half and v.is_floating_point() else v)
                        for k, v in data["model"].items() if not k.startswith("enc_q."))
    _atomic_save({"model": state, "iteration": int(data.get("iteration", 0)), "optimizer": None,
                  "learning_rate": data.get("learning_rate")}, Path(out_path))


__all__ = [
    "CHECKPOINT_KEYS", "CheckpointError", "build_generator", "compress", "load_checkpoint", "load_generator",
    "load_state_dict_checked", "read_checkpoint", "remove_weight_norm", "save_checkpoint",
    "to_classic_weight_norm_keys", "to_parametrized_weight_norm_keys",
]
