"""Windows over a long frame sequence and the crossfade that stitches their outputs back together.

A conversion runs the graph over windows of frames with context on both sides (`plan_chunks`); each
window's output is kept on its own frames and crossfaded with its neighbours' over `fade` samples centred
on each join (`stitch`). Whole-file conversion, the long-file path and live streaming all stitch with
`stitch`; the C host (hosts/c/src/signal.c) mirrors these functions and its tests compare them here.

All positions are integer sample (or frame) indices; all functions are pure apart from `stitch`'s
in-place add.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Chunk:
    """One generator window over frames [win_start, win_end) whose output is kept on [keep_start, keep_end)."""

    win_start: int
    win_end: int
    keep_start: int
    keep_end: int

    @property
    def length(self) -> int:
        return self.win_end - self.win_start


def plan_chunks(n_frames: int, window: int, context: int) -> list[Chunk]:
    """Cover frames [0, n_frames) with windows of exactly `window` frames (one shorter window if n < window).

    Consecutive windows overlap by at least 2 * `context`; the join between their kept
    regions sits in the middle of the overlap, so every join has >= `context` frames of
    real input on both sides. The last window is shifted left to end at n_frames, so
    every window of a long input has the same length (they batch together).
    """
    if n_frames <= 0:
        return []
    if window <= 0 or n_frames <= window:
        return [Chunk(0, n_frames, 0, n_frames)]
    step = window - 2 * context
    if step <= 0:
        raise ValueError(f"chunk window ({window} frames) must exceed twice the context ({context} frames)")
    starts = list(range(0, n_frames - window, step)) + [n_frames - window]
    chunks: list[Chunk] = []
    keep_start = 0
    for i, s in enumerate(starts):
        if i + 1 < len(starts):
            keep_end = (starts[i + 1] + s + window) // 2
        else:
            keep_end = n_frames
        chunks.append(Chunk(s, s + window, keep_start, keep_end))
        keep_start = keep_end
    return chunks


def crossfade_weights(fade: int) -> np.ndarray:
    """Linear fade-in ramp of `fade` samples, strictly inside (0, 1): [fade] float32."""
    return ((np.arange(fade, dtype=np.float64) + 0.5) / fade).astype(np.float32)


def stitch(
    out: np.ndarray,
    piece: np.ndarray,
    piece_start: int,
    keep_start: int,
    keep_end: int,
    fade: int,
    *,
    fade_in: bool | None = None,
    fade_out: bool | None = None,
    clip: tuple[int, int] | None = None,
) -> None:
    """Add `piece` (covering out[piece_start : piece_start + len(piece)]) into `out` in place.

    The piece owns [keep_start, keep_end). At a join it is faded linearly over `fade` samples centred on
    the join (fade-in from keep_start - fade // 2, fade-out from keep_end - fade // 2), so two neighbouring
    pieces' weights sum to exactly 1 everywhere. fade_in / fade_out: whether those joins have a neighbour
    (default: keep_start > 0 / keep_end < len(out)); an outer edge is kept as is. clip: [lo, hi) of `out`
    outside which nothing is added (default: all of `out`). Positions may be negative or past the end
    of `out`; only the part inside `out` and `clip` is added.
    """
    n_out = out.shape[-1]
    fade_in = keep_start > 0 if fade_in is None else fade_in
    fade_out = keep_end < n_out if fade_out is None else fade_out
    half = fade // 2
    lo = keep_start - half if fade_in and fade > 0 else keep_start
    hi = keep_end + (fade - half) if fade_out and fade > 0 else keep_end
    c_lo, c_hi = (0, n_out) if clip is None else (max(clip[0], 0), min(clip[1], n_out))
    a, z = max(lo, c_lo), min(hi, c_hi)
    if a >= z:
        return
    if a < piece_start or z > piece_start + piece.shape[-1]:
        raise ValueError(
            f"piece covers [{piece_start}, {piece_start + piece.shape[-1]}) but the crossfade needs [{a}, {z})"
        )
    part = piece[..., a - piece_start : z - piece_start].astype(np.float32, copy=True)
    if fade > 0:
        ramp = crossfade_weights(fade)
        if fade_in:
            r = keep_start - half
            s0, s1 = max(r, a), min(r + fade, z)
            part[..., s0 - a : s1 - a] *= ramp[s0 - r : s1 - r]
        if fade_out:
            r = keep_end - half
            s0, s1 = max(r, a), min(r + fade, z)
            part[..., s0 - a : s1 - a] *= 1.0 - ramp[s0 - r : s1 - r]
    out[..., a:z] += part
