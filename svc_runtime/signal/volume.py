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


RMS_BLOCK = 1 << 16
"""Samples squared and summed per step by `frame_rms` (its float64 scratch is a few blocks, not the input)."""


def _prefix_sums_at(samples: np.ndarray, positions: list[np.ndarray], block: int = RMS_BLOCK) -> list[np.ndarray]:
    """Sequential float64 sums of the first m squared samples, S(m), at each (sorted) array of m in `positions`.

    Walks the input once in blocks, carrying the running sum into each block's first element, so every
    S(m) is bit-identical to `np.cumsum(samples.astype(float64) ** 2)[m - 1]` (S(0) = 0) while the scratch
    stays O(block) instead of several float64 copies of the input.
    """
    n = samples.shape[0]
    out = [np.zeros(p.shape[0], np.float64) for p in positions]
    cursors = [int(np.searchsorted(p, 0, side="right")) for p in positions]  # S(0) = 0 is already there
    carry = 0.0
    for b0 in range(0, n, block):
        b1 = min(n, b0 + block)
        part = samples[b0:b1].astype(np.float64)
        sq = part * part
        sq[0] += carry
        sums = np.cumsum(sq)
        carry = float(sums[-1])
        for k, p in enumerate(positions):
            end = int(np.searchsorted(p, b1, side="right"))
            take = p[cursors[k] : end]
            out[k][cursors[k] : end] = sums[take - b0 - 1]
            cursors[k] = end
    for k in range(len(positions)):  # positions past the end (clipped to n) already counted above
        out[k][cursors[k] :] = carry
    return out


def frame_rms(
    samples: np.ndarray, frame_length: int, hop: int, pad_mode: Literal["constant", "reflect"] = "constant"
) -> np.ndarray:
    """RMS per centred frame, as ``librosa.feature.rms(center=True)``: float64 [1 + N // hop] (frame_length <= 2 * hop).

    Frame k covers padded positions [k * hop, k * hop + frame_length), i.e. input samples
    [k * hop - frame_length // 2, ...). ``pad_mode`` "constant" pads with zeros (librosa >= 0.10,
    the slicer): the frame is clipped to [0, N) and its power comes from running sums of the
    squared input, taken blockwise, so memory is O(frames). "reflect" (librosa 0.9, so-vits-svc's
    ``change_rms``) mirrors the edges first (a padded copy of the input).
    """
    half = frame_length // 2
    if pad_mode == "reflect":
        samples = np.pad(samples, half, mode="reflect")
        half = 0
    elif pad_mode != "constant":
        raise ValueError(f"pad_mode must be 'constant' or 'reflect', got {pad_mode!r}")
    n = samples.shape[0]
    n_frames = 1 + (n + 2 * half - frame_length) // hop
    if n_frames <= 0:
        return np.zeros(0, np.float64)
    starts = np.arange(n_frames, dtype=np.int64) * hop
    lo = np.clip(starts - half, 0, n)
    hi = np.clip(starts + frame_length - half, 0, n)
    s_lo, s_hi = _prefix_sums_at(samples, [lo, hi])
    power = (s_hi - s_lo) / frame_length
    return np.sqrt(np.maximum(power, 0.0))


def rms_frames(
    audio: np.ndarray,
    frame_length: int,
    hop: int,
    pad_mode: Literal["reflect", "constant"] = "reflect",
) -> np.ndarray:
    """`frame_rms` of 1-D, non-empty ``audio`` [N] as float32 [1 + N // hop]; ``pad_mode`` "reflect" by default
    (librosa 0.9, the version so-vits-svc pins)."""
    y = np.asarray(audio, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"audio must be 1-D [N], got shape {y.shape}")
    if y.size == 0:
        raise ValueError("cannot compute an RMS envelope of empty audio")
    return frame_rms(y, frame_length, hop, pad_mode).astype(np.float32)


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


__all__ = ["RMS_BLOCK", "RMS_FLOOR", "change_rms", "frame_rms", "rms_frames", "volume_envelope"]
