"""How far a reduced-precision or other-backend output is from its reference."""

from __future__ import annotations

import math

import numpy as np


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    """Signal-to-error ratio of `other` against `reference` (same shape), in dB, summed in float64:
    10 log10(sum ref^2 / sum (other - ref)^2); inf when the two are equal."""
    reference = np.asarray(reference, dtype=np.float64)
    error = float(np.sum(np.square(np.asarray(other, dtype=np.float64) - reference)))
    if error == 0.0:
        return math.inf
    return 10.0 * math.log10(max(float(np.sum(np.square(reference))), 1e-30) / error)
