"""Salience -> F0 decoders of the neural pitch networks (numpy only).

They run on the outputs of the RMVPE and FCPE graphs (ONNX Runtime or torch):
``salience [..., T, n_bins]`` in (0, 1) -> ``f0 [..., T]`` float32 Hz, 0 = unvoiced.
A frame is voiced when its largest salience is greater than ``threshold``.
Cents are relative to 10 Hz: ``f0 = 10 * 2 ** (cents / 1200)``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

RMVPE_CENTS_OFFSET = 1997.3794084376191  # cents of RMVPE's bin 0
RMVPE_CENTS_PER_BIN = 20.0
RMVPE_THRESHOLD = 0.05  # so-vits-svc's RMVPE F0 predictor default

FCPE_F0_RANGE = (32.7, 1975.5)  # Hz of FCPE's first and last bin (torchfcpe config)
FCPE_THRESHOLD = 0.05  # so-vits-svc's FCPE F0 predictor default (torchfcpe's own is 0.006)
FCPE_POST_RANGE = (50.0, 1100.0)  # Hz kept by so-vits-svc's F0 predictors

LOCAL_RADIUS = 4  # both decoders average 9 bins around the argmax

FcpeDecoder = Literal["local_argmax", "argmax"]


def cents_to_hz(cents: np.ndarray) -> np.ndarray:
    return 10.0 * np.exp2(np.asarray(cents, dtype=np.float64) / 1200.0)


def hz_to_cents(f0: np.ndarray) -> np.ndarray:
    return 1200.0 * np.log2(np.asarray(f0, dtype=np.float64) / 10.0)


def rmvpe_bin_cents(n_bins: int = 360) -> np.ndarray:
    """Cents of every RMVPE bin, float64 [n_bins]."""
    return RMVPE_CENTS_OFFSET + RMVPE_CENTS_PER_BIN * np.arange(n_bins, dtype=np.float64)


def fcpe_bin_cents(n_bins: int = 360, f0_range: tuple[float, float] = FCPE_F0_RANGE) -> np.ndarray:
    """Cents of every FCPE bin: evenly spaced from f0_min to f0_max, float64 [n_bins]."""
    low, high = hz_to_cents(np.array(f0_range))
    return np.linspace(low, high, n_bins)


def _check_salience(salience: np.ndarray, n_bins: int | None = None) -> np.ndarray:
    salience = np.asarray(salience)
    if salience.ndim < 2:
        raise ValueError(f"salience must be [..., frames, bins], got shape {salience.shape}")
    if n_bins is not None and salience.shape[-1] != n_bins:
        raise ValueError(f"salience has {salience.shape[-1]} bins, the cent table has {n_bins}")
    return salience.astype(np.float64, copy=False)


def _local_window(salience: np.ndarray) -> np.ndarray:
    """Indices of the 9 bins centred on each frame's argmax, not yet clipped: [..., T, 9]."""
    peak = np.argmax(salience, axis=-1)
    return peak[..., None] + np.arange(-LOCAL_RADIUS, LOCAL_RADIUS + 1)


def decode_rmvpe(salience: np.ndarray, threshold: float = RMVPE_THRESHOLD) -> np.ndarray:
    """RMVPE: salience-weighted mean cents of the bins argmax-4 .. argmax+4.

    The window is cut at the ends of the bin range (not padded).
    ``salience [..., T, 360] -> f0 [..., T]`` float32 Hz, 0 = unvoiced.
    """
    salience = _check_salience(salience)
    cents_table = rmvpe_bin_cents(salience.shape[-1])
    window = _local_window(salience)
    inside = (window >= 0) & (window < salience.shape[-1])
    window = np.clip(window, 0, salience.shape[-1] - 1)
    weights = np.take_along_axis(salience, window, axis=-1) * inside
    voiced = weights.max(axis=-1) > threshold
    with np.errstate(invalid="ignore", divide="ignore"):
        cents = (weights * cents_table[window]).sum(axis=-1) / weights.sum(axis=-1)
    return np.where(voiced, cents_to_hz(np.where(voiced, cents, 0.0)), 0.0).astype(np.float32)


def decode_fcpe(
    salience: np.ndarray,
    decoder: FcpeDecoder = "local_argmax",
    threshold: float = FCPE_THRESHOLD,
    f0_range: tuple[float, float] = FCPE_F0_RANGE,
    post_range: tuple[float, float] | None = FCPE_POST_RANGE,
) -> np.ndarray:
    """FCPE (torchfcpe's decoders): ``salience [..., T, bins] -> f0 [..., T]`` float32 Hz, 0 = unvoiced.

    * ``local_argmax``: weighted mean cents of the 9 bins around the argmax,
      indices clamped to the bin range (edge bins repeat).
    * ``argmax``: weighted mean cents over all bins.

    ``post_range = (f0_min, f0_max)``: F0 below f0_min becomes unvoiced and F0
    above f0_max is clamped to f0_max (torchfcpe's ``infer``); None keeps the raw values.
    """
    salience = _check_salience(salience)
    cents_table = fcpe_bin_cents(salience.shape[-1], f0_range)
    voiced = salience.max(axis=-1) > threshold
    if decoder == "local_argmax":
        window = _local_window(salience)
        window = np.clip(window, 0, salience.shape[-1] - 1)
        weights = np.take_along_axis(salience, window, axis=-1)
        bin_cents = cents_table[window]
    elif decoder == "argmax":
        weights = salience
        bin_cents = cents_table
    else:
        raise ValueError(f"FCPE decoder must be 'local_argmax' or 'argmax', got {decoder!r}")
    with np.errstate(invalid="ignore", divide="ignore"):
        cents = (weights * bin_cents).sum(axis=-1) / weights.sum(axis=-1)
    f0 = np.where(voiced, cents_to_hz(np.where(voiced, cents, 0.0)), 0.0)
    if post_range is not None:
        f0_min, f0_max = post_range
        f0 = np.where(f0 < f0_min, 0.0, np.minimum(f0, f0_max))
    return f0.astype(np.float32)
