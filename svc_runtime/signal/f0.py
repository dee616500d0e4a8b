"""F0 helpers shared by the runtime and training (numpy only, pure functions).

Conventions: ``f0`` is in Hz with 0 meaning unvoiced; frame ``i`` of an
``(sr, hop)`` grid sits at ``i * hop / sr`` seconds, and a signal of ``n``
samples has ``n // hop`` frames (so-vits-svc's ``p_len``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from svc_runtime.errors import SvcError
from svc_runtime.vocabulary import F0_MAX_HZ, F0_MIN_HZ

F0_BIN = 256
"""Number of coarse pitch bins (size of the generator's ``f0_emb``)."""

_MEL_MIN = 1127.0 * np.log(1.0 + F0_MIN_HZ / 700.0)
_MEL_MAX = 1127.0 * np.log(1.0 + F0_MAX_HZ / 700.0)
# so-vits-svc computes these two in float64 and the tensor ops in float32.
_COARSE_SCALE = np.float32((F0_BIN - 2) / (_MEL_MAX - _MEL_MIN))
_COARSE_OFFSET = np.float32(_MEL_MIN * ((F0_BIN - 2) / (_MEL_MAX - _MEL_MIN)) - 1.0)

UNVOICED_BELOW_HZ = 0.001
"""The pyworld predictors treat values below this as unvoiced when resizing."""


class NoVoiceError(SvcError, ValueError):
    """Raised by :func:`require_voiced` (so-vits-svc's ``f0_filter``) when no frame is voiced."""


def f0_to_coarse(f0: np.ndarray) -> np.ndarray:
    """Coarse pitch bins, bit-exact with so-vits-svc 4.1 ``utils.f0_to_coarse``.

    ``f0``: any shape, Hz. Returns int64 of the same shape. The mapping runs in
    float32 (the reference receives a float32 tensor): mel = 1127 ln(1 + f0/700),
    scaled so 50 Hz -> 1 and 1100 Hz -> 255, rounded half to even. Quirks kept on
    purpose: everything at or below ~50 Hz (0, negatives, NaN) gives 1, and a
    frame above ~1103.1 Hz (rounds to 256 or more) gives 0, not 255.
    """
    f = np.asarray(f0, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        ratio = np.float32(1.0) + f / np.float32(700.0)
        # float32 log rounded from float64: agrees with torch's float32 log far more
        # often than numpy's own float32 log does (which moves a few bins).
        log_ratio = np.log(ratio.astype(np.float64)).astype(np.float32)
        mel = np.float32(1127.0) * log_ratio
        mel = np.where(mel > 0, mel * _COARSE_SCALE - _COARSE_OFFSET, mel)
    # Non-finite values (f0 <= -700 Hz, NaN, inf) become int64 min in torch, i.e. bin 1.
    mel = np.where(np.isfinite(mel), mel, np.float32(0.0))
    coarse = np.rint(mel).astype(np.int64)
    coarse = np.where(coarse > 0, coarse, 0)
    coarse = np.where(coarse < 1, 1, coarse)
    return np.where(coarse < F0_BIN, coarse, 0)


def voiced_mask(f0: np.ndarray) -> np.ndarray:
    """uv flag as the generator takes it: float32 1.0 where f0 > 0, else 0.0 (same shape)."""
    return (np.asarray(f0) > 0).astype(np.float32)


def interpolate_unvoiced(f0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill unvoiced frames by linear interpolation between voiced neighbours.

    ``f0``: [T] Hz. Returns ``(f0_filled [T], uv [T] float32)`` as the so-vits-svc
    4.1 predictors' post-processing (RMVPE/FCPE ``post_process``, PM
    ``interpolate_f0``): values before the first / after the last voiced frame
    hold that frame's value; no voiced frame gives all zeros; one voiced frame
    gives that value everywhere. ``uv`` is taken before filling. Frames <= 0 or
    NaN count as unvoiced. The output keeps a floating input dtype (float64 else).
    """
    f = np.asarray(f0)
    if f.ndim != 1:
        raise ValueError(f"interpolate_unvoiced expects a 1-D f0 track, got shape {f.shape}")
    out_dtype = f.dtype if np.issubdtype(f.dtype, np.floating) else np.float64
    uv = voiced_mask(f)
    voiced_idx = np.flatnonzero(uv)
    if voiced_idx.size == 0:
        return np.zeros(f.shape, dtype=out_dtype), uv
    if voiced_idx.size == 1:
        return np.full(f.shape, f[voiced_idx[0]], dtype=out_dtype), uv
    filled = np.interp(np.arange(f.size), voiced_idx, f[voiced_idx].astype(np.float64))
    return filled.astype(out_dtype), uv


def nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each output frame for torch ``F.interpolate(mode="nearest")`` [n_out] int64.

    Exactly torch's CPU rule: identity when sizes match, ``i >> 1`` when doubling,
    else ``min(floor(i * (float32(n_in) / n_out)), n_in - 1)`` in float32.
    """
    if n_in <= 0 or n_out < 0:
        raise ValueError(f"cannot resize {n_in} frames to {n_out}")
    if n_out == n_in:
        return np.arange(n_out, dtype=np.int64)
    if n_out == 2 * n_in:
        return np.arange(n_out, dtype=np.int64) >> 1
    scale = np.float32(n_in) / np.float32(n_out)
    src = np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(src, n_in - 1)


def resize_f0(
    f0: np.ndarray, n_frames: int, mode: Literal["nearest", "linear"] = "nearest"
) -> np.ndarray:
    """Resize an f0 track [T] to ``n_frames`` frames (unvoiced stays 0).

    ``nearest``: the RMVPE/FCPE/crepe predictors' ``repeat_expand`` (torch
    nearest interpolation by length). ``linear``: the pyworld predictors'
    ``resize_f0``: linear interpolation over source index, where any frame
    touching an unvoiced (< 0.001 Hz) neighbour becomes 0. Keeps the dtype of a
    floating input.
    """
    f = np.asarray(f0)
    if f.ndim != 1:
        raise ValueError(f"resize_f0 expects a 1-D f0 track, got shape {f.shape}")
    if f.size == 0:
        raise ValueError("resize_f0 got an empty f0 track")
    if mode == "nearest":
        return f[nearest_indices(f.size, n_frames)]
    if mode == "linear":
        out_dtype = f.dtype if np.issubdtype(f.dtype, np.floating) else np.float64
        source = f.astype(np.float64)
        source[source < UNVOICED_BELOW_HZ] = np.nan
        positions = np.arange(0, f.size * n_frames, f.size) / n_frames
        resized = np.interp(positions, np.arange(f.size), source)
        return np.nan_to_num(resized).astype(out_dtype)
    raise ValueError(f"unknown resize mode {mode!r}; use 'nearest' or 'linear'")


def f0_at_times(
    f0: np.ndarray,
    src_times: np.ndarray,
    dst_times: np.ndarray,
    mode: Literal["nearest", "linear"] = "nearest",
) -> np.ndarray:
    """Re-sample an f0 track from its own frame times to others (time-exact grid alignment).

    ``f0``, ``src_times``: [T] (Hz, s, increasing); ``dst_times``: [N] s.
    ``nearest``: the value of the closest source frame (ties go to the earlier
    one); ``linear``: linear in time between the two neighbouring source frames,
    0 when either is unvoiced. Destination times more than half a source period
    outside the analysed span (nearest) or outside it at all (linear) are 0.
    Returns float64 [N].
    """
    f = np.asarray(f0, dtype=np.float64)
    t = np.asarray(src_times, dtype=np.float64)
    dst = np.asarray(dst_times, dtype=np.float64)
    if f.ndim != 1 or f.shape != t.shape:
        raise ValueError(f"f0 {f.shape} and its times {t.shape} must be equal 1-D shapes")
    if f.size == 0:
        return np.zeros(dst.shape, dtype=np.float64)
    if mode == "nearest":
        after = np.clip(np.searchsorted(t, dst), 0, t.size - 1)
        before = np.clip(after - 1, 0, t.size - 1)
        pick = np.where(np.abs(dst - t[before]) <= np.abs(t[after] - dst), before, after)
        half = 0.5 * float(np.median(np.diff(t))) if t.size > 1 else np.inf
        inside = (dst >= t[0] - half - 1e-9) & (dst <= t[-1] + half + 1e-9)
        return np.where(inside & (f[pick] >= UNVOICED_BELOW_HZ), f[pick], 0.0)
    if mode == "linear":
        source = np.where(f >= UNVOICED_BELOW_HZ, f, np.nan)
        out = np.interp(dst, t, source, left=np.nan, right=np.nan)
        return np.nan_to_num(out, nan=0.0)
    raise ValueError(f"unknown alignment mode {mode!r}; use 'nearest' or 'linear'")


def shift_f0(f0: np.ndarray, semitones: float) -> np.ndarray:
    """Transpose by ``semitones`` (so-vits-svc's ``tran``): ``f0 * 2 ** (semitones / 12)``; 0 stays 0.

    Keeps the input dtype (float32 stays float32, as in the reference's tensor op).
    """
    f = np.asarray(f0)
    if not np.issubdtype(f.dtype, np.floating):
        f = f.astype(np.float64)
    return f * f.dtype.type(2.0 ** (semitones / 12.0))


def require_voiced(f0: np.ndarray, source: str = "input") -> None:
    """so-vits-svc's ``f0_filter``: raise :class:`NoVoiceError` when ``f0`` has no voiced frame."""
    if not np.any(np.asarray(f0) > 0):
        raise NoVoiceError(
            f"no voiced frame found in {source}: the pitch tracker heard no voice. "
            "Check the audio (silence? noise only?) or lower the voicing threshold."
        )


__all__ = [
    "F0_BIN",
    "F0_MAX_HZ",
    "F0_MIN_HZ",
    "NoVoiceError",
    "UNVOICED_BELOW_HZ",
    "f0_at_times",
    "f0_to_coarse",
    "interpolate_unvoiced",
    "nearest_indices",
    "require_voiced",
    "resize_f0",
    "shift_f0",
    "voiced_mask",
]
