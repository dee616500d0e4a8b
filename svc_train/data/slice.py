"""Cut long recordings into training clips at silences.

The silence decisions are the runtime's so-vits-svc slicer
(:func:`svc_runtime.signal.slicer.slice_on_silence`). On top of it this module
enforces the clip length bounds a training set wants:

* a voiced clip shorter than ``min_length_s`` (only the last one can be, by the
  slicer's rules) is joined to its neighbour, silence between them included,
  when the joined clip stays within ``max_length_s``;
* a clip longer than ``max_length_s`` is split at its quietest frame below the
  threshold (a short pause the slicer did not cut because it was shorter than
  ``min_interval_ms``), recursively; a clip with no such frame cannot be cut at
  a silence and is reported in :attr:`ClipPlan.too_long` (it is still written).

Only silent stretches are ever dropped, so the clips cover all voiced audio.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from svc_runtime.signal.slicer import SlicerConfig, frame_rms, slice_on_silence

SPLIT_HOP_MS = 10  # frame grid used to find the quietest point inside an over-long clip


@dataclass(frozen=True)
class ClipSettings:
    """Slicer settings plus clip length bounds (seconds)."""

    threshold_db: float = -40.0
    min_length_s: float = 2.0
    max_length_s: float = 15.0
    min_interval_ms: int = 300
    hop_ms: int = 10
    max_silence_kept_ms: int = 500

    def __post_init__(self) -> None:
        if not 0 < self.min_length_s < self.max_length_s:
            raise ValueError(
                f"clip bounds: need 0 < min_length_s < max_length_s, got {self.min_length_s} and {self.max_length_s}"
            )
        if self.min_length_s * 1000 < self.min_interval_ms:
            raise ValueError(
                f"clip bounds: min_length_s ({self.min_length_s} s) must be at least min_interval_ms "
                f"({self.min_interval_ms} ms)"
            )

    def slicer(self) -> SlicerConfig:
        return SlicerConfig(
            threshold_db=self.threshold_db,
            min_length_ms=int(round(self.min_length_s * 1000)),
            min_interval_ms=self.min_interval_ms,
            hop_ms=self.hop_ms,
            max_silence_kept_ms=self.max_silence_kept_ms,
        )


@dataclass
class ClipPlan:
    """Clips as sample ranges [start, end) of the input, in order, non-overlapping."""

    clips: list[tuple[int, int]] = field(default_factory=list)
    too_long: list[tuple[int, int]] = field(default_factory=list)  # clips that could not be cut below max
    too_short: list[tuple[int, int]] = field(default_factory=list)  # clips that could not be joined up to min


def plan_clips(samples: np.ndarray, sample_rate: int, settings: ClipSettings = ClipSettings()) -> ClipPlan:
    """Plan training clips for a mono recording ``samples`` [N] (float, full scale 1.0)."""
    if samples.ndim != 1:
        raise ValueError(f"plan_clips expects mono samples [N], got shape {samples.shape}")
    segments = slice_on_silence(samples, sample_rate, settings.slicer())
    voiced = [(s.start, s.end) for s in segments if not s.silent]
    min_len = int(round(settings.min_length_s * sample_rate))
    max_len = int(round(settings.max_length_s * sample_rate))
    threshold = 10 ** (settings.threshold_db / 20.0)

    split: list[tuple[int, int]] = []
    too_long: list[tuple[int, int]] = []
    for start, end in voiced:
        pieces, uncuttable = _split_long(samples, sample_rate, start, end, min_len, max_len, threshold)
        split.extend(pieces)
        too_long.extend(uncuttable)

    clips = _join_short(split, min_len, max_len)
    too_short = [c for c in clips if c[1] - c[0] < min_len]
    return ClipPlan(clips=clips, too_long=too_long, too_short=too_short)


def _split_long(
    samples: np.ndarray, sr: int, start: int, end: int, min_len: int, max_len: int, threshold: float
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Split [start, end) at its quietest sub-threshold frames until every piece fits max_len."""
    if end - start <= max_len:
        return [(start, end)], []
    hop = max(1, round(sr * SPLIT_HOP_MS / 1000))
    rms = frame_rms(samples[start:end], 4 * hop, hop)
    cut_positions = np.arange(rms.shape[0]) * hop  # frame i is centred on sample i * hop
    quiet = rms < threshold
    inside = (cut_positions > 0) & (cut_positions < end - start)
    # Prefer cuts that leave both sides at least min_len long; fall back to any quiet frame.
    balanced = inside & (cut_positions >= min_len) & (cut_positions <= end - start - min_len)
    for allowed in (quiet & balanced, quiet & inside):
        candidates = np.flatnonzero(allowed)
        if candidates.size:
            middle = (end - start) / 2
            # Quietest frame first; among equally quiet frames the one nearest the middle.
            order = np.lexsort((np.abs(cut_positions[candidates] - middle), rms[candidates]))
            cut = start + int(cut_positions[candidates[order[0]]])
            left, left_bad = _split_long(samples, sr, start, cut, min_len, max_len, threshold)
            right, right_bad = _split_long(samples, sr, cut, end, min_len, max_len, threshold)
            return left + right, left_bad + right_bad
    return [(start, end)], [(start, end)]


def _join_short(clips: list[tuple[int, int]], min_len: int, max_len: int) -> list[tuple[int, int]]:
    """Join each clip shorter than min_len to a neighbour when the joined span fits max_len."""
    out = list(clips)
    i = 0
    while i < len(out):
        start, end = out[i]
        if end - start >= min_len or len(out) == 1:
            i += 1
            continue
        # Try the previous clip first (the slicer only leaves the last one short), then the next.
        if i > 0 and end - out[i - 1][0] <= max_len:
            out[i - 1] = (out[i - 1][0], end)
            del out[i]
            i -= 1
            continue
        if i + 1 < len(out) and out[i + 1][1] - start <= max_len:
            out[i + 1] = (start, out[i + 1][1])
            del out[i]
            continue
        i += 1
    return out


__all__ = ["ClipPlan", "ClipSettings", "plan_clips"]
