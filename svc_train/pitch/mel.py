"""Exportable log-mel front ends of the neural pitch networks.

The STFT is a strided ``conv1d`` with a fixed, windowed DFT basis instead of
``torch.stft``: the same graph then traces to plain ONNX operators (Pad, Conv,
MatMul, Log) that ONNX Runtime and TensorRT run without an STFT kernel. The
librosa mel filterbank is baked in as a buffer.

Two framings are in use:

* ``"center"`` (RMVPE, like ``torch.stft(center=True)``): reflect-pad
  ``n_fft // 2`` samples on both sides; ``N // hop + 1`` frames.
* ``"fcpe"`` (torchfcpe's ``MelModule``): reflect-pad ``(win - hop) // 2`` on the
  left and ``(win - hop + 1) // 2`` on the right, un-centred STFT, which yields
  ``N // hop`` frames; the last frame is repeated once to give ``N // hop + 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from svc_runtime.vocabulary import PITCH_HOP, PITCH_SAMPLE_RATE
from svc_train.mel import mel_basis

Framing = Literal["center", "fcpe"]


@dataclass(frozen=True)
class MelConfig:
    """Log-mel front end settings (sample rate in Hz, sizes in samples)."""

    sample_rate: int
    n_fft: int
    hop_length: int
    n_mels: int
    fmin: float
    fmax: float
    htk: bool
    framing: Framing
    clip: float = 1e-5
    magnitude_eps: float = 0.0  # added to re^2 + im^2 before the square root

    def __post_init__(self) -> None:
        if self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ValueError(f"MelConfig: n_fft, hop_length and n_mels must be positive, got {self}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(
                f"MelConfig: need 0 <= fmin < fmax <= sample_rate / 2, got fmin={self.fmin}, "
                f"fmax={self.fmax}, sample_rate={self.sample_rate}"
            )
        if self.framing not in ("center", "fcpe"):
            raise ValueError(f"MelConfig.framing must be 'center' or 'fcpe', got {self.framing!r}")

    @property
    def pad_left(self) -> int:
        if self.framing == "center":
            return self.n_fft // 2
        return (self.n_fft - self.hop_length) // 2

    @property
    def pad_right(self) -> int:
        if self.framing == "center":
            return self.n_fft // 2
        return (self.n_fft - self.hop_length + 1) // 2

    @property
    def min_samples(self) -> int:
        """Shortest input the reflect padding accepts (reflection needs pad < length)."""
        return max(self.pad_left, self.pad_right) + 1

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for ``n_samples`` of audio (both framings: ``N // hop + 1``)."""
        return n_samples // self.hop_length + 1


RMVPE_MEL = MelConfig(
    sample_rate=PITCH_SAMPLE_RATE, n_fft=1024, hop_length=PITCH_HOP, n_mels=128, fmin=30.0, fmax=8000.0,
    htk=True, framing="center",
)


def mel_filterbank(config: MelConfig) -> np.ndarray:
    """librosa's mel filterbank (Slaney area normalisation), float32 [n_mels, n_fft // 2 + 1]."""
    return mel_basis(config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax, config.htk)


def windowed_dft_basis(n_fft: int) -> np.ndarray:
    """Periodic-Hann windowed DFT basis, float32 [2 * (n_fft // 2 + 1), 1, n_fft].

    Rows ``0 .. F-1`` give the real part and rows ``F .. 2F-1`` the (negated)
    imaginary part of the one-sided spectrum; the sign does not matter for the
    magnitude. Computed in float64, cast once.
    """
    n = np.arange(n_fft, dtype=np.float64)
    window = 0.5 - 0.5 * np.cos(2.0 * math.pi * n / n_fft)
    k = np.arange(n_fft // 2 + 1, dtype=np.float64)[:, None]
    phase = 2.0 * math.pi * ((k * n[None, :]) % n_fft) / n_fft
    basis = np.concatenate([np.cos(phase) * window, np.sin(phase) * window], axis=0)
    return basis[:, None, :].astype(np.float32)


class LogMelSpectrogram(nn.Module):
    """Waveform -> natural-log mel spectrogram, traceable with a dynamic length.

    ``forward(audio [B, N] float32) -> mel [B, n_mels, N // hop + 1]``.
    """

    def __init__(self, config: MelConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("dft_basis", torch.from_numpy(windowed_dft_basis(config.n_fft)), persistent=False)
        self.register_buffer("mel_basis", torch.from_numpy(mel_filterbank(config)), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        padded = F.pad(audio.unsqueeze(1), (cfg.pad_left, cfg.pad_right), mode="reflect")
        spectrum = F.conv1d(padded, self.dft_basis, stride=cfg.hop_length)  # [B, 2F, frames]
        n_bins = cfg.n_fft // 2 + 1
        real, imag = spectrum[:, :n_bins], spectrum[:, n_bins:]
        power = real * real + imag * imag
        if cfg.magnitude_eps:
            power = power + cfg.magnitude_eps
        mel = torch.matmul(self.mel_basis, torch.sqrt(power))
        log_mel = torch.log(torch.clamp(mel, min=cfg.clip))
        if cfg.framing == "fcpe":
            log_mel = torch.cat([log_mel, log_mel[:, :, -1:]], dim=2)
        return log_mel


def check_audio_length(n_samples: int, config: MelConfig, network: str) -> None:
    """Raise a clear error when a waveform is too short for the reflect padding."""
    if n_samples < config.min_samples:
        raise ValueError(
            f"{network}: audio of {n_samples} samples is too short; it needs at least "
            f"{config.min_samples} samples ({1000 * config.min_samples / config.sample_rate:.1f} ms "
            f"at {config.sample_rate} Hz)"
        )
