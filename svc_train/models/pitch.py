"""Pitch conversions used inside the generator (torch, exactly as so-vits-svc 4.1)."""

from __future__ import annotations

import math

import torch

from svc_runtime.signal.f0 import F0_BIN
from svc_runtime.vocabulary import F0_MAX_HZ, F0_MIN_HZ

F0_MEL_MIN = 1127 * math.log(1 + F0_MIN_HZ / 700)
F0_MEL_MAX = 1127 * math.log(1 + F0_MAX_HZ / 700)


def f0_to_coarse(f0: torch.Tensor) -> torch.Tensor:
    """f0: Hz (any shape) -> int64 bins for the pitch embedding.

    Mel-scaled between 50 and 1100 Hz onto bins 1..255: f0 up to about 50 Hz (0, negative,
    and NaN from f0 <= -700 included) gives 1; above about 1103.1 Hz the bin would be
    256 and is set to 0, as the reference does (it clips with `* (coarse < 256)`).
    """
    f0_mel = 1127 * (1 + f0 / 700).log()
    scale = (F0_BIN - 2) / (F0_MEL_MAX - F0_MEL_MIN)
    offset = F0_MEL_MIN * scale - 1.0
    f0_mel = torch.where(f0_mel > 0, f0_mel * scale - offset, f0_mel)
    coarse = torch.round(f0_mel).long()
    coarse = coarse * (coarse > 0)
    coarse = coarse + (coarse < 1) * 1
    coarse = coarse * (coarse < F0_BIN)
    coarse = coarse + (coarse >= F0_BIN) * (F0_BIN - 1)
    return coarse


def f0_to_lf0(f0: torch.Tensor) -> torch.Tensor:
    """f0: [B, T] Hz -> [B, 1, T] the F0 decoder's log-f0 (mel / 500)."""
    return 2595.0 * torch.log10(1.0 + f0.unsqueeze(1) / 700.0) / 500


def lf0_to_f0(lf0: torch.Tensor) -> torch.Tensor:
    """[B, 1, T] log-f0 (mel / 500) -> [B, T] Hz; negative log-f0 gives negative Hz, passed on."""
    return (700 * (torch.pow(10, lf0 * 500 / 2595) - 1)).squeeze(1)


def normalize_lf0(lf0: torch.Tensor, x_mask: torch.Tensor, uv: torch.Tensor,
                  random_scale: bool = True) -> torch.Tensor:
    """Subtract the mean log-f0 over voiced frames (uv [B, T]); in training also scale by U(0.8, 1.2).

    lf0: [B, 1, T], x_mask: [B, 1, T] -> [B, 1, T]. A clip without voiced frames divides by 9999
    (as the reference), so its mean is ~0.
    """
    voiced = torch.sum(uv, dim=1, keepdim=True)
    voiced = torch.where(voiced == 0, torch.full_like(voiced, 9999), voiced)
    means = torch.sum(lf0[:, 0, :] * uv, dim=1, keepdim=True) / voiced
    if random_scale:
        factor = torch.empty(lf0.shape[0], 1, device=lf0.device).uniform_(0.8, 1.2)
    else:
        factor = torch.ones(lf0.shape[0], 1, device=lf0.device)
    return (lf0 - means.unsqueeze(-1)) * factor.unsqueeze(-1) * x_mask
