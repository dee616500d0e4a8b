"""Salience -> F0 decoders of the neural pitch networks (numpy only).

They run on the outputs of the RMVPE and FCPE graphs (ONNX Runtime or torch):
``salience [..., T, n_bins]`` in (0, 1) -> ``f0 [..., T]`` float32 Hz, 0 = unvoiced.
A frame is voiced when its largest salience is greater than ``threshold``.
Cents are relative to 10 Hz: ``f0 = 10 * 2 ** (cents / 1200)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from svc_runtime.pitch.methods import (
    CREPE_DECODERS,
    CREPE_THRESHOLD,
    FCPE_DECODERS,
    FCPE_THRESHOLD,
    RMVPE_THRESHOLD,
    CrepeDecoder,
    FcpeDecoder,
    pitch_method,
)
from svc_runtime.vocabulary import F0_MAX_HZ, F0_MIN_HZ, PITCH_HOP, PITCH_SAMPLE_RATE

RMVPE_CENTS_OFFSET = 1997.3794084376191  # cents of RMVPE's bin 0
RMVPE_CENTS_PER_BIN = 20.0

FCPE_F0_RANGE = (32.7, 1975.5)  # Hz of FCPE's first and last bin (torchfcpe config)
FCPE_POST_RANGE = (F0_MIN_HZ, F0_MAX_HZ)  # Hz kept by so-vits-svc's F0 predictors

LOCAL_RADIUS = 4  # both decoders average 9 bins around the argmax


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
        raise ValueError(f"FCPE decoder must be one of {FCPE_DECODERS}, got {decoder!r}")
    with np.errstate(invalid="ignore", divide="ignore"):
        cents = (weights * bin_cents).sum(axis=-1) / weights.sum(axis=-1)
    f0 = np.where(voiced, cents_to_hz(np.where(voiced, cents, 0.0)), 0.0)
    if post_range is not None:
        f0_min, f0_max = post_range
        f0 = np.where(f0 < f0_min, 0.0, np.minimum(f0, f0_max))
    return f0.astype(np.float32)


# --- CREPE (torchcrepe 0.0.24 decoding, so-vits-svc 4.1's CrepePitchExtractor post-processing) ---

CREPE_F0_RANGE = (F0_MIN_HZ, F0_MAX_HZ)  # Hz, so-vits-svc's CrepePitchExtractor f0_min / f0_max
CREPE_SILENCE_DB = -60.0  # torchcrepe.threshold.Silence(-60) as so-vits-svc applies it
CREPE_WINDOW = 1024  # samples at 16 kHz, also the loudness STFT size
CREPE_TRANSITION_WIDTH = 12  # viterbi: transitions of up to 11 bins, triangular weights


def crepe_bin_range(f0_range: tuple[float, float] = CREPE_F0_RANGE) -> tuple[int, int]:
    """Allowed bins ``[low, high)``: floor of f0_min's bin, ceil of f0_max's (torchcrepe's ``postprocess``)."""
    low, high = (hz_to_cents(np.array(f0_range)) - RMVPE_CENTS_OFFSET) / RMVPE_CENTS_PER_BIN
    return int(np.floor(low)), int(np.ceil(high))


def crepe_transition(n_bins: int = 360) -> np.ndarray:
    """torchcrepe's viterbi transition matrix: ``max(12 - |i - j|, 0)``, rows normalised. float64 [n, n]."""
    distance = np.abs(np.arange(n_bins)[:, None] - np.arange(n_bins)[None, :])
    weights = np.maximum(CREPE_TRANSITION_WIDTH - distance, 0).astype(np.float64)
    return weights / weights.sum(axis=1, keepdims=True)


def viterbi_path(emission: np.ndarray, transition: np.ndarray) -> np.ndarray:
    """Most likely state sequence, as ``librosa.sequence.viterbi`` with a uniform start.

    ``emission [T, S]`` float32 probabilities, ``transition [S, S]`` (row: from). Logs are taken
    of ``x + tiny(float32)`` like librosa does for float32 input, so "impossible" steps cost
    about -87 instead of -inf; ties go to the lowest state. Returns int64 [T].
    """
    n_steps, n_states = emission.shape
    eps = np.finfo(np.float32).tiny
    log_emission = np.log(emission.astype(np.float32) + np.float32(eps)).astype(np.float64)
    log_trans = np.log(transition + eps)
    path = np.zeros(n_steps, dtype=np.int64)
    if n_steps == 0:
        return path
    back = np.zeros((n_steps, n_states), dtype=np.int64)
    value = log_emission[0] + np.log(1.0 / n_states + eps)
    states = np.arange(n_states)
    for t in range(1, n_steps):
        scores = value[:, None] + log_trans  # [from, to]
        back[t] = np.argmax(scores, axis=0)
        value = log_emission[t] + scores[back[t], states]
    path[-1] = int(np.argmax(value))
    for t in range(n_steps - 2, -1, -1):
        path[t] = back[t + 1, path[t + 1]]
    return path


def decode_crepe_bins(
    probabilities: np.ndarray,
    decoder: CrepeDecoder = "viterbi",
    f0_range: tuple[float, float] = CREPE_F0_RANGE,
) -> tuple[np.ndarray, np.ndarray]:
    """torchcrepe's ``postprocess``: ``probabilities [T, 360]`` -> ``(f0 [T] Hz float64, periodicity [T])``.

    Bins outside ``f0_range`` are excluded, then:

    * ``viterbi``: a path through the softmax over bins of the probabilities (torchcrepe
      applies the softmax to the sigmoid outputs) with :func:`crepe_transition`;
    * ``argmax``: the most probable bin;
    * ``weighted_argmax``: mean cents of the bins argmax-4 .. argmax+4 (cut at the range ends),
      weighted by ``sigmoid(probability)`` as torchcrepe does (excluded bins weigh 0).

    ``viterbi`` and ``argmax`` give bin centres: torchcrepe adds random triangular noise of up
    to +-20 cents ("dither") there, which is left out so that F0 is reproducible.
    ``periodicity`` is the probability of the chosen bin.
    """
    probs = _check_salience(probabilities)
    if probs.ndim != 2:
        raise ValueError(f"CREPE probabilities must be [frames, bins], got shape {probs.shape}")
    n_bins = probs.shape[-1]
    low, high = crepe_bin_range(f0_range)
    allowed = np.zeros(n_bins, dtype=bool)
    allowed[max(low, 0) : max(high, 0)] = True
    if not allowed.any():
        raise ValueError(f"CREPE f0 range {f0_range} Hz covers no pitch bin")
    masked = np.where(allowed, probs, -np.inf)
    cents_table = rmvpe_bin_cents(n_bins)
    if decoder == "viterbi":
        shifted = np.exp(masked - masked.max(axis=-1, keepdims=True))
        emission = (shifted / shifted.sum(axis=-1, keepdims=True)).astype(np.float32)
        bins = viterbi_path(emission, crepe_transition(n_bins))
        cents = cents_table[bins]
    elif decoder in ("argmax", "weighted_argmax"):
        bins = np.argmax(masked, axis=-1)
        cents = cents_table[bins]
        if decoder == "weighted_argmax":
            window = _local_window(masked)
            inside = (window >= 0) & (window < n_bins)
            window = np.clip(window, 0, n_bins - 1)
            with np.errstate(over="ignore"):
                weights = 1.0 / (1.0 + np.exp(-np.take_along_axis(masked, window, axis=-1)))
            weights = np.where(inside, weights, 0.0)
            cents = (weights * cents_table[window]).sum(axis=-1) / weights.sum(axis=-1)
    else:
        raise ValueError(f"CREPE decoder must be one of {CREPE_DECODERS}, got {decoder!r}")
    periodicity = np.take_along_axis(masked, bins[:, None], axis=-1)[:, 0]
    periodicity = np.where(np.isfinite(periodicity), periodicity, 0.0)
    return cents_to_hz(cents), periodicity


def a_weighted_loudness(wav16k: np.ndarray, hop_length: int = PITCH_HOP) -> np.ndarray:
    """torchcrepe's ``loudness.a_weighted`` at 16 kHz: mean A-weighted dB per frame, [N // hop + 1].

    Centred 1024-point STFT (zero padding, periodic Hann), ``amplitude_to_db`` (amin 1e-5,
    80 dB below the loudest bin of the whole signal), plus librosa's A-weighting (floor
    -80 dB) minus 20 dB, floored at -100 dB, averaged over the 513 bins.
    """
    audio = np.asarray(wav16k, dtype=np.float64)
    if audio.ndim != 1:
        raise ValueError(f"loudness expects mono audio [N], got shape {audio.shape}")
    half = CREPE_WINDOW // 2
    padded = np.pad(audio, (half, half))
    frames = np.lib.stride_tricks.sliding_window_view(padded, CREPE_WINDOW)[::hop_length]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(CREPE_WINDOW) / CREPE_WINDOW)
    magnitude = np.abs(np.fft.rfft(frames * window, axis=-1))
    db = 10.0 * np.log10(np.maximum(magnitude * magnitude, 1e-10))
    if db.size:
        db = np.maximum(db, db.max() - 80.0)
    freq_sq = (np.arange(CREPE_WINDOW // 2 + 1) * float(PITCH_SAMPLE_RATE) / CREPE_WINDOW) ** 2
    const = np.array([12194.217, 20.598997, 107.65265, 737.86223]) ** 2
    with np.errstate(divide="ignore"):
        a_weight = 2.0 + 20.0 * (
            np.log10(const[0]) + 2 * np.log10(freq_sq) - np.log10(freq_sq + const[0])
            - np.log10(freq_sq + const[1]) - 0.5 * np.log10(freq_sq + const[2]) - 0.5 * np.log10(freq_sq + const[3])
        )
    weighted = db + (np.maximum(a_weight, -80.0) - 20.0)
    return np.maximum(weighted, -100.0).mean(axis=-1)


def _masked_window_3(values: np.ndarray, pad_value: float) -> tuple[np.ndarray, np.ndarray]:
    """Every frame with its two neighbours: ``(values [T, 3], valid [T, 3])``; NaN and padding invalid."""
    padded = np.pad(values.astype(np.float64), 1, constant_values=pad_value)
    valid = np.pad(~np.isnan(values), 1, constant_values=False)
    index = np.arange(values.size)[:, None] + np.arange(3)[None, :]
    return padded[index], valid[index]


def crepe_postprocess(
    f0: np.ndarray,
    periodicity: np.ndarray,
    threshold: float = CREPE_THRESHOLD,
    loudness_db: np.ndarray | None = None,
) -> np.ndarray:
    """so-vits-svc's CrepePitchExtractor after ``torchcrepe.predict``: ``f0 [T]`` -> ``f0 [T]`` float32, 0 = unvoiced.

    1. periodicity median filter over 3 frames (at the ends: the lower of the 2 frames there);
    2. periodicity 0 where ``loudness_db < -60`` (skipped when ``loudness_db`` is None);
    3. unvoiced where periodicity < ``threshold``;
    4. F0 mean filter over the voiced frames among 3, which also fills an unvoiced frame
       next to a voiced one (as so-vits-svc's ``MaskedAvgPool1d``).
    """
    f0 = np.asarray(f0, dtype=np.float64)
    periodicity = np.asarray(periodicity, dtype=np.float64)
    if f0.shape != periodicity.shape or f0.ndim != 1:
        raise ValueError(f"f0 {f0.shape} and periodicity {periodicity.shape} must be the same [T]")
    window, valid = _masked_window_3(periodicity, 0.0)
    ordered = np.sort(np.where(valid, window, np.inf), axis=-1)
    middle = np.maximum(valid.sum(axis=-1) - 1, 0) // 2
    smoothed = np.take_along_axis(ordered, middle[:, None], axis=-1)[:, 0]
    if loudness_db is not None:
        loudness_db = np.asarray(loudness_db, dtype=np.float64)
        if loudness_db.shape != f0.shape:
            raise ValueError(f"loudness {loudness_db.shape} must match f0 {f0.shape}")
        smoothed = np.where(loudness_db < CREPE_SILENCE_DB, 0.0, smoothed)
    gated = np.where(smoothed < threshold, np.nan, f0)
    window, valid = _masked_window_3(gated, 0.0)
    total = np.where(valid, window, 0.0).sum(axis=-1)
    mean = total / np.maximum(valid.sum(axis=-1), 1)
    return np.where(np.isfinite(mean) & (mean != 0.0), mean, 0.0).astype(np.float32)


def decode_crepe(
    probabilities: np.ndarray,
    wav16k: np.ndarray | None,
    decoder: CrepeDecoder = "viterbi",
    threshold: float = CREPE_THRESHOLD,
    f0_range: tuple[float, float] = CREPE_F0_RANGE,
) -> np.ndarray:
    """CREPE as so-vits-svc runs it: ``probabilities [T, 360]`` (+ the 16 kHz audio for the
    silence gate; None skips it) -> ``f0 [T]`` float32 Hz, 0 = unvoiced."""
    f0, periodicity = decode_crepe_bins(probabilities, decoder, f0_range)
    loudness = None if wav16k is None else a_weighted_loudness(wav16k)
    if loudness is not None and loudness.shape != f0.shape:
        raise ValueError(
            f"CREPE: {f0.size} frames of probabilities but {loudness.size} loudness frames from "
            f"{np.asarray(wav16k).size} samples; expected N // 160 + 1 frames"
        )
    return crepe_postprocess(f0, periodicity, threshold, loudness)


@dataclass(frozen=True)
class SalienceDecoder:
    """The one salience -> F0 decoder of every neural method, set up once, called per salience.

    ``method``: rmvpe, fcpe or crepe (see :mod:`svc_runtime.pitch.methods`). ``threshold`` /
    ``decoder``: None = the method's default. ``post_range``: Hz kept after decoding (FCPE:
    lower unvoiced, higher clamped; CREPE: the allowed bins); RMVPE keeps its raw values.
    ``bins_range``: the Hz span of FCPE's bins (its checkpoint's f0_min / f0_max; None:
    torchfcpe's). Call: ``salience [T, bins]`` or ``[B, T, bins]`` (+ the 16 kHz audio
    ``[N]`` / ``[B, N]`` CREPE's silence gate reads; None skips the gate) -> ``f0 [T]`` /
    ``[B, T]`` float32 Hz, 0 = unvoiced.
    """

    method: str
    threshold: float | None = None
    decoder: str | None = None
    post_range: tuple[float, float] = (F0_MIN_HZ, F0_MAX_HZ)
    bins_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        spec = pitch_method(self.method, neural=True)
        object.__setattr__(self, "decoder", spec.check_decoder(self.decoder))
        if self.threshold is None:
            object.__setattr__(self, "threshold", spec.threshold)
        if not 0.0 <= float(self.threshold) < 1.0:  # type: ignore[arg-type]
            raise ValueError(f"{self.method}: threshold must be in [0, 1), got {self.threshold}")
        if not 0.0 <= self.post_range[0] < self.post_range[1]:
            raise ValueError(f"{self.method}: needs 0 <= f0_min < f0_max, got {self.post_range}")

    @classmethod
    def from_pitch_info(cls, info: Any) -> SalienceDecoder:
        """From a manifest's pitch section (``method``, ``threshold``, ``decoder``, ``f0_min`` /
        ``f0_max``, ``bins_f0_min`` / ``bins_f0_max``; missing bins: the method's default)."""
        bins = (getattr(info, "bins_f0_min", None), getattr(info, "bins_f0_max", None))
        return cls(
            method=info.method.lower(),
            threshold=info.threshold,
            decoder=getattr(info, "decoder", None),
            post_range=(info.f0_min, info.f0_max),
            bins_range=None if None in bins else (float(bins[0]), float(bins[1])),  # type: ignore[arg-type]
        )

    def __call__(self, salience: np.ndarray, wav16k: np.ndarray | None = None) -> np.ndarray:
        salience = np.asarray(salience)
        threshold = float(self.threshold)  # type: ignore[arg-type]
        if self.method == "rmvpe":
            return decode_rmvpe(salience, threshold)
        if self.method == "fcpe":
            bins = self.bins_range or FCPE_F0_RANGE
            return decode_fcpe(salience, self.decoder, threshold, bins, self.post_range)  # type: ignore[arg-type]
        if salience.ndim == 2:
            return decode_crepe(salience, wav16k, self.decoder, threshold, self.post_range)  # type: ignore[arg-type]
        if salience.ndim != 3:
            raise ValueError(f"crepe: salience must be [frames, bins] or [batch, frames, bins], got {salience.shape}")
        audio = [None] * salience.shape[0] if wav16k is None else np.atleast_2d(wav16k)
        if len(audio) != salience.shape[0]:
            raise ValueError(f"crepe: {salience.shape[0]} salience rows but {len(audio)} audio rows")
        return np.stack([self(s, a) for s, a in zip(salience, audio)])

