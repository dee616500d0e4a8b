"""Content-unit frame alignment to the generator's frame count (so-vits-svc ``repeat_expand_2d``).

so-vits-svc resizes the speech encoder's units [dim, frames] (about 50 frames/s)
to the f0 frame count of the generator's hop with ``unit_interpolate_mode``:

- ``"left"``: walk the output frames, holding a source frame until the output
  index reaches the next source boundary ``(j + 1) * n_out / n_in`` (computed in
  float32, as the reference does), then advancing by exactly one source frame;
- ``"nearest"``: torch ``F.interpolate(mode="nearest")`` by size.

Both only pick source columns, so the result has the input's dtype.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from svc_runtime.signal.f0 import nearest_indices
from svc_runtime.vocabulary import UNIT_INTERPOLATE_MODES

__all__ = ["UNIT_INTERPOLATE_MODES", "align_units", "left_indices", "nearest_indices", "unit_columns"]


def left_indices(n_in: int, n_out: int) -> np.ndarray:
    """Source frame of each output frame for ``repeat_expand_2d_left``: [n_out] int64.

    Output frame i takes source frame p, where p starts at 0 and, at each i,
    moves on by one when ``i >= float32((p + 1) * n_out) / float32(n_in)``.
    When ``n_out < n_in`` this advances at most one source frame per output
    frame, exactly like the reference (it does not skip ahead).
    """
    if n_in <= 0 or n_out < 0:
        raise ValueError(f"cannot align {n_in} unit frames to {n_out} frames")
    bounds = (np.arange(n_in + 1, dtype=np.int64) * n_out).astype(np.float32) / np.float32(n_in)
    out = np.empty(n_out, dtype=np.int64)
    position = 0
    for i in range(n_out):
        if not np.float32(i) < bounds[position + 1]:
            position += 1
        out[i] = position
    return out


def unit_columns(n_units: int, n_frames: int, mode: Literal["left", "nearest"] = "left") -> np.ndarray:
    """The unit column each of `n_frames` frames takes: [n_frames] int64 (`align_units` is this pick)."""
    if n_units <= 0:
        raise ValueError("units have no frames")
    if mode == "left":
        return left_indices(n_units, n_frames)
    if mode == "nearest":
        return nearest_indices(n_units, n_frames)
    raise ValueError(f"unknown unit_interpolate_mode {mode!r}; use one of {UNIT_INTERPOLATE_MODES}")


def align_units(units: np.ndarray, n_frames: int, mode: Literal["left", "nearest"] = "left") -> np.ndarray:
    """Resize units [..., dim, T_units] along the last axis to [..., dim, n_frames].

    ``mode`` is so-vits-svc's ``unit_interpolate_mode`` ("left" is the default of
    ``repeat_expand_2d``; 4.1 configs usually say "nearest").
    """
    units = np.asarray(units)
    if units.ndim < 2:
        raise ValueError(f"units must be [..., dim, frames], got shape {units.shape}")
    return np.take(units, unit_columns(units.shape[-1], n_frames, mode), axis=-1)
