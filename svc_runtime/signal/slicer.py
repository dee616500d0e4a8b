"""Silence slicing (so-vits-svc's `Slicer`), chunk plans with overlap, and crossfade stitching.

All positions are integer sample (or frame) indices; all functions are pure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from svc_runtime.signal.volume import frame_rms


@dataclass(frozen=True)
class SlicerConfig:
    """so-vits-svc slicer settings. threshold_db: RMS below it is silence; times in ms."""

    threshold_db: float = -40.0
    min_length_ms: int = 5000
    min_interval_ms: int = 300
    hop_ms: int = 20
    max_silence_kept_ms: int = 5000

    def __post_init__(self) -> None:
        if not self.min_length_ms >= self.min_interval_ms >= self.hop_ms:
            raise ValueError("slicer: need min_length_ms >= min_interval_ms >= hop_ms")
        if not self.max_silence_kept_ms >= self.hop_ms:
            raise ValueError("slicer: need max_silence_kept_ms >= hop_ms")
        if self.hop_ms <= 0:
            raise ValueError("slicer: hop_ms must be positive")


@dataclass(frozen=True)
class Segment:
    """Samples [start, end) of the input; `silent` segments are not converted (output zeros)."""

    start: int
    end: int
    silent: bool

    @property
    def length(self) -> int:
        return self.end - self.start


def slice_on_silence(samples: np.ndarray, sample_rate: int, cfg: SlicerConfig = SlicerConfig()) -> list[Segment]:
    """Split [N] mono samples into voiced and silent segments covering [0, N) without gaps.

    Same decisions as so-vits-svc 4.1's `Slicer.slice`: silent runs of at least
    `min_interval_ms` split clips of at least `min_length_ms`; at most `max_silence_kept_ms`
    of silence stays attached to its neighbours, cut at the quietest frame.
    """
    n = samples.shape[0]
    hop = round(sample_rate * cfg.hop_ms / 1000)
    min_interval_f = sample_rate * cfg.min_interval_ms / 1000
    win = min(round(min_interval_f), 4 * hop)
    min_length = round(sample_rate * cfg.min_length_ms / 1000 / hop)
    min_interval = round(min_interval_f / hop)
    max_kept = round(sample_rate * cfg.max_silence_kept_ms / 1000 / hop)
    threshold = 10 ** (cfg.threshold_db / 20.0)
    if n <= min_length:
        return [Segment(0, n, False)]
    rms = frame_rms(samples, win, hop)
    tags: list[tuple[int, int]] = []
    silence_start: int | None = None
    clip_start = 0
    for i, value in enumerate(rms):
        if value < threshold:
            if silence_start is None:
                silence_start = i
            continue
        if silence_start is None:
            continue
        leading = silence_start == 0 and i > max_kept
        middle = i - silence_start >= min_interval and i - clip_start >= min_length
        if not leading and not middle:
            silence_start = None
            continue
        if i - silence_start <= max_kept:
            pos = int(rms[silence_start : i + 1].argmin()) + silence_start
            tags.append((0, pos) if silence_start == 0 else (pos, pos))
            clip_start = pos
        elif i - silence_start <= max_kept * 2:
            pos = int(rms[i - max_kept : silence_start + max_kept + 1].argmin()) + i - max_kept
            pos_l = int(rms[silence_start : silence_start + max_kept + 1].argmin()) + silence_start
            pos_r = int(rms[i - max_kept : i + 1].argmin()) + i - max_kept
            if silence_start == 0:
                tags.append((0, pos_r))
                clip_start = pos_r
            else:
                tags.append((min(pos_l, pos), max(pos_r, pos)))
                clip_start = max(pos_r, pos)
        else:
            pos_l = int(rms[silence_start : silence_start + max_kept + 1].argmin()) + silence_start
            pos_r = int(rms[i - max_kept : i + 1].argmin()) + i - max_kept
            tags.append((0, pos_r) if silence_start == 0 else (pos_l, pos_r))
            clip_start = pos_r
        silence_start = None
    total = rms.shape[0]
    if silence_start is not None and total - silence_start >= min_interval:
        silence_end = min(total, silence_start + max_kept)
        pos = int(rms[silence_start : silence_end + 1].argmin()) + silence_start
        tags.append((pos, total + 1))
    if not tags:
        return [Segment(0, n, False)]
    segments: list[Segment] = []
    cursor = 0
    for a, b in tags:
        a_s, b_s = min(n, a * hop), min(n, b * hop)
        if a_s > cursor:
            segments.append(Segment(cursor, a_s, False))
        if b_s > max(a_s, cursor):
            segments.append(Segment(max(a_s, cursor), b_s, True))
        cursor = max(cursor, b_s)
    if cursor < n:
        segments.append(Segment(cursor, n, False))
    return segments


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
) -> None:
    """Add `piece` (covering out[piece_start : piece_start + len]) into `out` in place.

    The piece owns [keep_start, keep_end); at an interior join (keep_start > 0 or
    keep_end < len(out)) it is faded linearly over `fade` samples centred on the join,
    so that two neighbouring pieces' weights sum to exactly 1 everywhere.
    """
    n_out = out.shape[-1]
    half_l = fade // 2
    lo = keep_start - half_l if keep_start > 0 and fade > 0 else keep_start
    hi = keep_end + (fade - half_l) if keep_end < n_out and fade > 0 else keep_end
    lo, hi = max(lo, 0), min(hi, n_out)
    if lo < piece_start or hi > piece_start + piece.shape[-1]:
        raise ValueError(
            f"piece covers [{piece_start}, {piece_start + piece.shape[-1]}) but the crossfade needs [{lo}, {hi})"
        )
    seg = piece[..., lo - piece_start : hi - piece_start].astype(np.float32, copy=True)
    if fade > 0:
        ramp = crossfade_weights(fade)
        if keep_start > 0:
            a = keep_start - half_l
            s0, s1 = max(a, lo), min(a + fade, hi)
            seg[..., s0 - lo : s1 - lo] *= ramp[s0 - a : s1 - a]
        if keep_end < n_out:
            a = keep_end - half_l
            s0, s1 = max(a, lo), min(a + fade, hi)
            seg[..., s0 - lo : s1 - lo] *= 1.0 - ramp[s0 - a : s1 - a]
    out[..., lo:hi] += seg
