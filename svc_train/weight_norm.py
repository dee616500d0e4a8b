"""Weight norm folded into plain weights, once: on modules (for inference / export) and on state dicts
(checkpoints stored weight-normed, read into networks built without it).

`svc_train.models.modules.apply_weight_norm` puts it on (classic form). A weight-normed layer stores ``weight = g * v / ||v||``, the norm taken over every dim but the gain's
(dim 0 for convs). Two key styles exist: classic ``<layer>.weight_g`` / ``<layer>.weight_v`` (so-vits-svc
4.1, torch's deprecated ``weight_norm``) and ``<layer>.parametrizations.weight.original0`` / ``original1``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.weight_norm import WeightNorm

KEY_STYLES = ((".weight_g", ".weight_v"), (".parametrizations.weight.original0", ".parametrizations.weight.original1"))
"""(gain suffix, direction suffix) of each key style."""


class WeightNormError(ValueError):
    """A gain / direction pair that is not a weight norm (shapes do not fit)."""


def has_weight_norm(module: nn.Module) -> bool:
    """Whether ``module`` carries a classic (``weight_g`` / ``weight_v``) weight norm on ``weight``."""
    return any(isinstance(hook, WeightNorm) and hook.name == "weight" for hook in module._forward_pre_hooks.values())


def fold_module(module: nn.Module) -> nn.Module:
    """Fold every weight norm in ``module`` (classic hooks and parametrizations) into plain weights, in place."""
    for sub in module.modules():
        if has_weight_norm(sub):
            torch.nn.utils.remove_weight_norm(sub, name="weight")
        if parametrize.is_parametrized(sub):
            for name in list(sub.parametrizations.keys()):
                parametrize.remove_parametrizations(sub, name, leave_parametrized=True)
    return module


def fold_pair(g: torch.Tensor, v: torch.Tensor, where: str = "weight") -> torch.Tensor:
    """``g * v / ||v||`` in float32, the norm over every dim where ``g`` has size 1 (``where``: for errors)."""
    kept = [d for d in range(g.dim()) if g.shape[d] != 1]
    if g.dim() != v.dim() or len(kept) > 1 or any(g.shape[d] != v.shape[d] for d in kept):
        raise WeightNormError(f"{where}: gain {tuple(g.shape)} is not a weight-norm gain of {tuple(v.shape)}")
    v = v.float()
    if not kept:  # one gain for the whole tensor (e.g. a conv with one output channel)
        return g.float() * v / v.norm()
    dim = kept[0]
    norm = v.transpose(0, dim).flatten(1).norm(dim=1).view(g.shape)
    return g.float() * v / norm


def fold_state(state: Mapping[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """A copy of ``state`` with every weight-norm pair (either key style) under ``prefix`` replaced by ``weight``.

    Keys outside ``prefix`` and plain weights pass through unchanged; a gain without its direction
    (or the reverse) is a `WeightNormError`.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        style = next((s for s in KEY_STYLES if key.startswith(prefix) and key.endswith(s)), None)
        if style is None:
            out[key] = value
            continue
        g_suffix, v_suffix = style
        if key.endswith(v_suffix):
            if key[: -len(v_suffix)] + g_suffix not in state:
                raise WeightNormError(f"{key} has no gain {key[: -len(v_suffix)] + g_suffix}")
            continue
        base = key[: -len(g_suffix)]
        if base + v_suffix not in state:
            raise WeightNormError(f"{key} has no direction {base + v_suffix}")
        out[base + ".weight"] = fold_pair(value, state[base + v_suffix], base)
    return out


__all__ = ["KEY_STYLES", "WeightNormError", "fold_module", "fold_pair", "fold_state", "has_weight_norm"]
