"""Loudness helpers (numpy only, pure functions): the generator's volume input and RVC-style RMS mixing."""

from __future__ import annotations

from typing import Literal

import numpy as np

RMS_FLOOR = 1e-6
"""so-vits-svc's floor on the converted audio's RMS envelope in :func:`change_rms`."""


def volume_envelope(audio: np.ndarray, hop: int) -> np.ndarray:
    """Frame RMS volume, as so-vits-svc 4.1 ``Volume_Extractor(hop).extract``.

    ``audio``: [N] or [B, N] float samples. Returns float32 [N // hop] or
    [B, N // hop]: the squared signal is reflect-padded by ``hop // 2`` on the
    left and ``(hop + 1) // 2`` on the right, cut into non-overlapping windows of
    ``hop`` samples, averaged and square-rooted (frame ``i`` is centred on
    sample ``i * hop``). Accumulated in float64 and rounded to float32, so it
    matches the reference's float32 result to about 1 ulp.
    """
    if hop <= 0:
        raise ValueError(f"hop must be a positive number of samples, got {hop}")
    x = np.asarray(audio)
    if x.ndim not in (1, 2):
        raise ValueError(f"audio must be [N] or [B, N], got shape {x.shape}")
    n_samples = x.shape[-1]
    left, right = hop // 2, (hop + 1) // 2
    if n_samples <= max(left, right):
        raise ValueError(
            f"audio of {n_samples} samples is too short for a volume envelope with hop {hop}"
            f" (needs more than {max(left, right)} samples)"
        )
    n_frames = n_samples // hop
    # Square in float32 first, as the reference does on its float32 tensor.
    power = np.square(x.astype(np.float32)).astype(np.float64)
    pad = [(0, 0)] * (power.ndim - 1) + [(left, right)]
    padded = np.pad(power, pad, mode="reflect")
    frames = padded[..., : n_frames * hop].reshape(*padded.shape[:-1], n_frames, hop)
    return np.sqrt(frames.mean(axis=-1).astype(np.float32))


def rms_frames(
    audio: np.ndarray,
    frame_length: int,
    hop: int,
    pad_mode: Literal["reflect", "constant"] = "reflect",
) -> np.ndarray:
    """Centred frame RMS of ``audio`` [N], as ``librosa.feature.rms(y, frame_length, hop, center=True)``.

    Returns float32 [1 + N // hop] (for frame_length <= 2 * hop). ``pad_mode``:
    "reflect" is librosa 0.9 (the version so-vits-svc pins); librosa >= 0.10
    pads with zeros ("constant").
    """
    y = np.asarray(audio, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"audio must be 1-D [N], got shape {y.shape}")
    if y.size == 0:
        raise ValueError("cannot compute an RMS envelope of empty audio")
    padded = np.pad(y, frame_length // 2, mode=pad_mode)
    n_frames = 1 + (padded.size - frame_length) // hop
    starts = np.arange(n_frames) * hop
    power = np.stack([np.mean(padded[s : s + frame_length] ** 2) for s in starts])
    return np.sqrt(power).astype(np.float32)


def _linear_resize_float32(values: np.ndarray, n_out: int) -> np.ndarray:
    """torch ``F.interpolate(mode="linear", align_corners=False)`` of [L] to [n_out], in float32."""
    v = np.asarray(values, dtype=np.float32)
    n_in = v.size
    scale = np.float32(n_in) / np.float32(n_out)
    src = scale * (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    i0 = src.astype(np.int64)
    i1 = i0 + (i0 < n_in - 1)
    lam1 = np.clip(src - i0.astype(np.float32), np.float32(0.0), np.float32(1.0))
    lam0 = np.float32(1.0) - lam1
    return lam0 * v[i0] + lam1 * v[i1]


def change_rms(
    source: np.ndarray,
    source_sr: int,
    converted: np.ndarray,
    converted_sr: int,
    rate: float,
    pad_mode: Literal["reflect", "constant"] = "reflect",
) -> np.ndarray:
    """Mix the loudness envelope of ``source`` into ``converted`` (so-vits-svc / RVC ``change_rms``).

    ``source``: [N1] input audio at ``source_sr``; ``converted``: [N2] output
    audio at ``converted_sr``. Both RMS envelopes use half-second frames
    (frame ``sr // 2 * 2``, hop ``sr // 2``) and are stretched linearly to N2
    samples; the result is ``converted * rms_src ** (1 - rate) *
    max(rms_conv, 1e-6) ** (rate - 1)``. ``rate`` = 1 keeps the converted
    loudness, 0 takes the source's. Returns float32 [N2] (a new array).
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"loudness mix rate must be in [0, 1], got {rate}")
    out = np.asarray(converted, dtype=np.float32)
    if out.ndim != 1:
        raise ValueError(f"converted audio must be 1-D [N], got shape {out.shape}")
    if rate == 1.0:
        return out.copy()
    n_out = out.size
    rms_src = rms_frames(source, source_sr // 2 * 2, source_sr // 2, pad_mode)
    rms_out = rms_frames(out, converted_sr // 2 * 2, converted_sr // 2, pad_mode)
    env_src = _linear_resize_float32(rms_src, n_out)
    env_out = np.maximum(_linear_resize_float32(rms_out, n_out), np.float32(RMS_FLOOR))
    gain = np.power(env_src, np.float32(1.0 - rate)) * np.power(env_out, np.float32(rate - 1.0))
    return out * gain


__all__ = ["RMS_FLOOR", "change_rms", "rms_frames", "volume_envelope"]
