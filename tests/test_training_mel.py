"""Spectrogram functions against an independent librosa/numpy computation of so-vits-svc's recipe."""

import librosa
import numpy as np
import pytest
import torch

from svc_train.mel import SpectrogramCache, mel_spectrogram_torch, spec_to_mel_torch, spectrogram_torch

SR, N_FFT, HOP, WIN, N_MELS = 44100, 2048, 512, 2048, 80


def _reference_linear(y: np.ndarray) -> np.ndarray:
    pad = (N_FFT - HOP) // 2
    padded = np.pad(y.astype(np.float64), (pad, pad), mode="reflect")
    window = np.hanning(WIN + 1)[:-1]  # periodic Hann, as torch.hann_window
    stft = librosa.stft(padded, n_fft=N_FFT, hop_length=HOP, win_length=WIN, window=window, center=False)
    return np.sqrt(np.abs(stft) ** 2 + 1e-6)


def _signal(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(n) / SR
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)


def test_linear_spectrogram_matches_reference_and_frame_count():
    y = _signal(HOP * 40)
    spec = spectrogram_torch(torch.from_numpy(y)[None], N_FFT, SR, HOP, WIN, center=False)
    assert spec.shape == (1, N_FFT // 2 + 1, 40)  # N = 40 hops -> 40 frames
    ref = _reference_linear(y)
    np.testing.assert_allclose(spec[0].numpy(), ref, rtol=1e-4, atol=1e-4)


def test_mel_matches_reference_and_cache_gives_identical_numbers():
    y = _signal(HOP * 24)
    cache = SpectrogramCache()
    args = (N_FFT, N_MELS, SR, HOP, WIN, 0.0, 22050)
    mel_cached = mel_spectrogram_torch(torch.from_numpy(y)[None], *args, cache=cache)
    mel_fresh = mel_spectrogram_torch(torch.from_numpy(y)[None], *args)
    torch.testing.assert_close(mel_cached, mel_fresh, rtol=0, atol=0)
    basis = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS, fmin=0.0, fmax=22050)
    ref = np.log(np.clip(basis @ _reference_linear(y), 1e-5, None))
    np.testing.assert_allclose(mel_cached[0].numpy(), ref, rtol=1e-4, atol=1e-4)
    assert mel_cached.shape == (1, N_MELS, 24)


def test_cache_is_per_instance_and_keyed_by_every_argument():
    a, b = SpectrogramCache(), SpectrogramCache()
    spec = torch.rand(1, N_FFT // 2 + 1, 3)
    spec_to_mel_torch(spec, N_FFT, N_MELS, SR, 0.0, 22050, cache=a)
    assert len(a._mel_bases) == 1 and len(b._mel_bases) == 0
    # Same fmax, different mel count: so-vits-svc's global cache would reuse the wrong basis here.
    mel_40 = spec_to_mel_torch(spec, N_FFT, 40, SR, 0.0, 22050, cache=a)
    assert mel_40.shape == (1, 40, 3) and len(a._mel_bases) == 2


def test_rejects_non_batched_waveform():
    with pytest.raises(ValueError, match=r"\[B, N\]"):
        spectrogram_torch(torch.zeros(HOP * 4), N_FFT, SR, HOP, WIN)
