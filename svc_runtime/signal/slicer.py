"""Silence slicing (so-vits-svc's `Slicer`): where a file splits into voiced and silent segments.

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


@dataclass(frozen=True)
class SlicerGrid:
    """A `SlicerConfig` at one sample rate: the RMS frame (`window`, `hop` samples) and the lengths in frames."""

    hop: int
    window: int
    min_length: int
    min_interval: int
    max_kept: int
    threshold: float

    @classmethod
    def at(cls, sample_rate: int, cfg: SlicerConfig = SlicerConfig()) -> "SlicerGrid":
        hop = round(sample_rate * cfg.hop_ms / 1000)
        min_interval_f = sample_rate * cfg.min_interval_ms / 1000
        return cls(
            hop=hop, window=min(round(min_interval_f), 4 * hop),
            min_length=round(sample_rate * cfg.min_length_ms / 1000 / hop), min_interval=round(min_interval_f / hop),
            max_kept=round(sample_rate * cfg.max_silence_kept_ms / 1000 / hop), threshold=10 ** (cfg.threshold_db / 20.0),
        )


def slice_on_silence(samples: np.ndarray, sample_rate: int, cfg: SlicerConfig = SlicerConfig()) -> list[Segment]:
    """Split [N] mono samples into voiced and silent segments covering [0, N) without gaps.

    Same decisions as so-vits-svc 4.1's `Slicer.slice`: silent runs of at least
    `min_interval_ms` split clips of at least `min_length_ms`; at most `max_silence_kept_ms`
    of silence stays attached to its neighbours, cut at the quietest frame.
    """
    grid = SlicerGrid.at(sample_rate, cfg)
    n = samples.shape[0]
    if n <= grid.min_length:
        return [Segment(0, n, False)]
    return segments_from_rms(frame_rms(samples, grid.window, grid.hop), n, grid)


def segments_from_rms(rms: np.ndarray, n: int, grid: SlicerGrid) -> list[Segment]:
    """`slice_on_silence`'s decisions from the frame RMS of the N samples (`frame_rms(x, grid.window, grid.hop)`)."""
    if n <= grid.min_length:
        return [Segment(0, n, False)]
    tags = _silence_tags(rms, grid)
    if not tags:
        return [Segment(0, n, False)]
    segments: list[Segment] = []
    cursor = 0
    for a, b in tags:
        a_s, b_s = min(n, a * grid.hop), min(n, b * grid.hop)
        if a_s > cursor:
            segments.append(Segment(cursor, a_s, False))
        if b_s > max(a_s, cursor):
            segments.append(Segment(max(a_s, cursor), b_s, True))
        cursor = max(cursor, b_s)
    if cursor < n:
        segments.append(Segment(cursor, n, False))
    return segments


def _quietest(rms: np.ndarray, lo: int, hi: int) -> int:
    """The frame of least RMS in [lo, hi)."""
    return int(rms[lo:hi].argmin()) + lo


def _silence_tags(rms: np.ndarray, grid: SlicerGrid) -> list[tuple[int, int]]:
    """Silent runs to cut out, as (first, end) frames, in order (so-vits-svc's `sil_tags`)."""
    max_kept = grid.max_kept
    tags: list[tuple[int, int]] = []
    silence_start: int | None = None
    clip_start = 0
    for i, value in enumerate(rms):
        if value < grid.threshold:
            if silence_start is None:
                silence_start = i
            continue
        if silence_start is None:
            continue
        leading = silence_start == 0 and i > max_kept
        middle = i - silence_start >= grid.min_interval and i - clip_start >= grid.min_length
        if leading or middle:
            tag = _cut(rms, silence_start, i, max_kept)
            tags.append(tag)
            clip_start = tag[1]
        silence_start = None
    total = rms.shape[0]
    if silence_start is not None and total - silence_start >= grid.min_interval:
        silence_end = min(total, silence_start + max_kept)
        tags.append((_quietest(rms, silence_start, silence_end + 1), total + 1))
    return tags


def _cut(rms: np.ndarray, start: int, i: int, max_kept: int) -> tuple[int, int]:
    """Where to cut the silent run [start, i): keep at most `max_kept` frames of it each side, cut at the quietest."""
    if i - start <= max_kept:
        pos = _quietest(rms, start, i + 1)
        return (0, pos) if start == 0 else (pos, pos)
    pos_l = _quietest(rms, start, start + max_kept + 1)
    pos_r = _quietest(rms, i - max_kept, i + 1)
    if start == 0:
        return 0, pos_r
    if i - start <= max_kept * 2:
        pos = _quietest(rms, i - max_kept, start + max_kept + 1)
        return min(pos_l, pos), max(pos_r, pos)
    return pos_l, pos_r
