"""The NSF-HiFiGAN vocoder's log-mel front end in numpy (no torch, no librosa).

Matches so-vits-svc 4.1's ``vdecoder/nsf_hifigan/nvSTFT.STFT.get_mel``: with a key
shift ``k`` the FFT and window sizes scale by ``2 ** (k / 12)`` (rounded), the hop by
``speed``; the signal is padded by ``(win - hop) // 2`` on the left and
``max((win - hop + 1) // 2, win - N - left)`` on the right (reflect, or zeros when the
signal is too short to reflect), framed without centring, windowed by a periodic Hann
window, magnitude ``sqrt(re^2 + im^2 + 1e-9)``; a shifted spectrum is cut or padded
back to ``n_fft // 2 + 1`` bins and scaled by ``win / win_shifted``; then the Slaney
mel filterbank of the *unshifted* FFT and ``log(max(x, 1e-5))``.
A signal of ``N = n * hop`` samples gives ``n`` frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

MAGNITUDE_EPS = 1e-9
LOG_CLIP = 1e-5


@dataclass(frozen=True)
class MelSpec:
    """The vocoder's analysis parameters (its ``config.json``)."""

    sampling_rate: int = 44100
    num_mels: int = 128
    n_fft: int = 2048
    win_size: int = 2048
    hop_size: int = 512
    fmin: float = 40.0
    fmax: float = 16000.0

    def validate(self) -> None:
        if self.win_size > self.n_fft:
            raise ValueError(f"win_size ({self.win_size}) must not exceed n_fft ({self.n_fft})")
        if min(self.sampling_rate, self.num_mels, self.n_fft, self.win_size, self.hop_size) <= 0:
            raise ValueError(f"every size in {self} must be positive")


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = hz / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)


@lru_cache(maxsize=8)
def slaney_mel_filterbank(sampling_rate: int, n_fft: int, num_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """[num_mels, n_fft // 2 + 1] float32, equal to ``librosa.filters.mel`` defaults (Slaney norm)."""
    fft_freqs = np.linspace(0.0, sampling_rate / 2.0, n_fft // 2 + 1)
    mel_points = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), num_mels + 2))
    spacing = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / spacing[:-1, None]
    upper = ramps[2:] / spacing[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2 : num_mels + 2] - mel_points[:num_mels]))[:, None]
    weights.flags.writeable = False
    return weights.astype(np.float32)


@lru_cache(maxsize=8)
def _hann(win: int) -> np.ndarray:
    n = np.arange(win, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win)


def log_mel(audio: np.ndarray, spec: MelSpec, keyshift: float = 0.0, speed: float = 1.0) -> np.ndarray:
    """audio: [N] or [B, N] float in [-1, 1] at ``spec.sampling_rate``.

    Returns the natural-log mel [B, num_mels, frames] float32 (frames = N // hop for
    N a multiple of hop, keyshift 0, speed 1).
    """
    spec.validate()
    y = np.asarray(audio, dtype=np.float64)
    if y.ndim == 1:
        y = y[None]
    if y.ndim != 2 or y.shape[-1] == 0:
        raise ValueError(f"audio must be [N] or [B, N] samples with N > 0, got shape {np.shape(audio)}")
    factor = 2.0 ** (keyshift / 12.0)
    n_fft = int(np.round(spec.n_fft * factor))
    win = int(np.round(spec.win_size * factor))
    hop = int(np.round(spec.hop_size * speed))
    length = y.shape[-1]
    left = (win - hop) // 2
    right = max((win - hop + 1) // 2, win - length - left)
    mode = "reflect" if right < length else "constant"
    y = np.pad(y, ((0, 0), (left, right)), mode=mode)
    if y.shape[-1] < n_fft:
        raise ValueError(f"audio of {length} samples is too short for an FFT of {n_fft}")
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft, axis=-1)[:, ::hop, :]
    window = np.zeros(n_fft)
    offset = (n_fft - win) // 2  # torch.stft centres a shorter window inside the FFT frame
    window[offset : offset + win] = _hann(win)
    spectrum = np.fft.rfft(frames * window, axis=-1)
    magnitude = np.sqrt(spectrum.real**2 + spectrum.imag**2 + MAGNITUDE_EPS)  # [B, F, bins]
    if keyshift != 0:
        bins = spec.n_fft // 2 + 1
        if magnitude.shape[-1] < bins:
            magnitude = np.pad(magnitude, ((0, 0), (0, 0), (0, bins - magnitude.shape[-1])))
        magnitude = magnitude[..., :bins] * (spec.win_size / win)
    basis = slaney_mel_filterbank(spec.sampling_rate, spec.n_fft, spec.num_mels, float(spec.fmin), float(spec.fmax))
    mel = np.einsum("mk,bfk->bmf", basis.astype(np.float64), magnitude)
    return np.log(np.maximum(mel, LOG_CLIP)).astype(np.float32)


__all__ = ["MelSpec", "log_mel", "slaney_mel_filterbank"]
