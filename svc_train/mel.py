"""Linear and mel spectrograms as so-vits-svc 4.1 computes them for training.

Same numbers as so-vits-svc's ``modules/mel_processing.py``: the signal is
reflect-padded by ``(n_fft - hop) / 2`` on both sides, framed with an
un-centred ``torch.stft`` and a Hann window, the magnitude is
``sqrt(re^2 + im^2 + 1e-6)``, the mel filterbank is librosa's (Slaney), and
the log is ``log(clamp(x, 1e-5))``. A signal of ``N = k * hop`` samples gives
``k`` frames.

Windows and filterbanks are cached in a :class:`SpectrogramCache` that the
caller owns (one per trainer or dataset), never in module globals. Without a
cache every call builds what it needs afresh.
"""

from __future__ import annotations

import librosa
import numpy as np
import torch

MAGNITUDE_EPS = 1e-6  # added to re^2 + im^2 before the square root
LOG_CLIP = 1e-5  # magnitudes are clamped to this before the log


class SpectrogramCache:
    """Hann windows and mel filterbanks, keyed by every argument that shapes them."""

    def __init__(self) -> None:
        self._windows: dict[tuple, torch.Tensor] = {}
        self._mel_bases: dict[tuple, torch.Tensor] = {}

    def window(self, win_size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """Periodic Hann window [win_size]."""
        key = (win_size, dtype, str(device))
        if key not in self._windows:
            self._windows[key] = hann_window(win_size, dtype, device)
        return self._windows[key]

    def mel_basis(
        self,
        n_fft: int,
        num_mels: int,
        sampling_rate: int,
        fmin: float,
        fmax: float | None,
        dtype: torch.dtype,
        device: torch.device,
    ) -> torch.Tensor:
        """librosa mel filterbank [num_mels, n_fft // 2 + 1]."""
        key = (n_fft, num_mels, sampling_rate, fmin, fmax, dtype, str(device))
        if key not in self._mel_bases:
            basis = mel_basis(sampling_rate, n_fft, num_mels, fmin, fmax)
            self._mel_bases[key] = torch.from_numpy(basis).to(dtype=dtype, device=device)
        return self._mel_bases[key]


def hann_window(win_size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.hann_window(win_size).to(dtype=dtype, device=device)


def mel_basis(
    sampling_rate: int, n_fft: int, num_mels: int, fmin: float, fmax: float | None, htk: bool = False
) -> np.ndarray:
    """librosa's mel filterbank (Slaney area normalisation; ``htk``: HTK mel scale), float32
    [num_mels, n_fft // 2 + 1]: the one filterbank of the torch side (generator, vocoder and pitch
    mels; `svc_runtime.diffusion.mel.slaney_mel_filterbank` is its numpy twin for the runtime)."""
    return librosa.filters.mel(
        sr=sampling_rate, n_fft=n_fft, n_mels=num_mels, fmin=fmin, fmax=fmax, htk=htk
    ).astype(np.float32)


def spectrogram_torch(
    y: torch.Tensor,
    n_fft: int,
    sampling_rate: int,
    hop_size: int,
    win_size: int,
    center: bool = False,
    *,
    cache: SpectrogramCache | None = None,
) -> torch.Tensor:
    """Linear magnitude spectrogram.

    y: [B, N] float waveform in [-1, 1]. Returns [B, n_fft // 2 + 1, frames]
    (``N // hop_size`` frames when ``center`` is False and N is a multiple of hop).
    ``sampling_rate`` is unused, kept for so-vits-svc's signature.
    """
    del sampling_rate
    if y.dim() != 2:
        raise ValueError(f"spectrogram_torch: expected a waveform [B, N], got shape {tuple(y.shape)}")
    window = cache.window(win_size, y.dtype, y.device) if cache else hann_window(win_size, y.dtype, y.device)
    pad = int((n_fft - hop_size) / 2)
    y = torch.nn.functional.pad(y.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    spec = torch.stft(
        y,
        n_fft,
        hop_length=hop_size,
        win_length=win_size,
        window=window,
        center=center,
        pad_mode="reflect",
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    spec = torch.view_as_real(spec)
    return torch.sqrt(spec.pow(2).sum(-1) + MAGNITUDE_EPS)


def spec_to_mel_torch(
    spec: torch.Tensor,
    n_fft: int,
    num_mels: int,
    sampling_rate: int,
    fmin: float,
    fmax: float | None,
    *,
    cache: SpectrogramCache | None = None,
) -> torch.Tensor:
    """Log-mel from a linear spectrogram: [B, n_fft // 2 + 1, T] -> [B, num_mels, T] (natural log)."""
    cache = cache or SpectrogramCache()
    basis = cache.mel_basis(n_fft, num_mels, sampling_rate, fmin, fmax, spec.dtype, spec.device)
    mel = torch.matmul(basis, spec)
    return torch.log(torch.clamp(mel, min=LOG_CLIP))


def mel_spectrogram_torch(
    y: torch.Tensor,
    n_fft: int,
    num_mels: int,
    sampling_rate: int,
    hop_size: int,
    win_size: int,
    fmin: float,
    fmax: float | None,
    center: bool = False,
    *,
    cache: SpectrogramCache | None = None,
) -> torch.Tensor:
    """Log-mel straight from a waveform: y [B, N] -> [B, num_mels, frames]."""
    spec = spectrogram_torch(y, n_fft, sampling_rate, hop_size, win_size, center, cache=cache)
    return spec_to_mel_torch(spec, n_fft, num_mels, sampling_rate, fmin, fmax, cache=cache)


__all__ = [
    "SpectrogramCache",
    "mel_spectrogram_torch",
    "spec_to_mel_torch",
    "spectrogram_torch",
]
