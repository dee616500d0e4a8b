"""Small pure functions on mono float32 signals: DC removal, peak limiting, length fitting."""

from __future__ import annotations

import numpy as np


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of width `width` (odd) with reflected edges; same length as x."""
    half = width // 2
    padded = np.pad(x.astype(np.float64), (half + 1, half), mode="reflect")
    c = np.cumsum(padded)
    return (c[width:] - c[:-width]) / width


def remove_dc(samples: np.ndarray, sample_rate: int, cutoff_hz: float = 25.0) -> np.ndarray:
    """Zero-phase high-pass: subtract a triangular (twice boxcar) moving average.

    The boxcar's first null sits at `cutoff_hz`, so a constant or slowly drifting offset
    is removed and the voice band (above ~40 Hz) passes within 0.4 dB. [N] -> [N] float32.
    """
    width = max(3, int(round(sample_rate / cutoff_hz)) | 1)
    if samples.shape[0] <= width:
        return (samples - samples.mean()).astype(np.float32)
    low = _moving_average(_moving_average(samples, width), width)
    return (samples - low).astype(np.float32)


def limit_peak(samples: np.ndarray, limit: float = 0.99) -> tuple[np.ndarray, float]:
    """Scale `samples` so |peak| <= limit; returns (samples, gain), gain 1.0 when untouched."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak <= limit:
        return samples, 1.0
    gain = limit / peak
    return (samples * gain).astype(np.float32), gain


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad the last axis to exactly `length` samples."""
    n = samples.shape[-1]
    if n == length:
        return samples
    if n > length:
        return samples[..., :length]
    pad = [(0, 0)] * (samples.ndim - 1) + [(0, length - n)]
    return np.pad(samples, pad)
