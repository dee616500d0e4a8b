"""Sample-rate conversion with soxr (high quality), with a length that is exact by definition."""

from __future__ import annotations

import numpy as np
import soxr

from svc_runtime.audio.dsp import fit_length


def resampled_length(n_samples: int, in_rate: int, out_rate: int) -> int:
    """Length of `n_samples` at `in_rate` once resampled to `out_rate`: round(n * out / in)."""
    return int((n_samples * out_rate + in_rate // 2) // in_rate)


def resample(samples: np.ndarray, in_rate: int, out_rate: int, quality: str = "HQ") -> np.ndarray:
    """[N] float32 at in_rate -> [resampled_length(N)] float32 at out_rate (soxr, linear phase)."""
    if in_rate == out_rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
    out = soxr.resample(np.ascontiguousarray(samples, dtype=np.float32), in_rate, out_rate, quality)
    return fit_length(out.astype(np.float32, copy=False), resampled_length(len(samples), in_rate, out_rate))
