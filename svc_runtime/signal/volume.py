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


class FrameRms:
    """`frame_rms` of a signal that arrives in blocks (`feed`), in O(frames) memory.

    Frame k covers [k * hop - half, k * hop - half + frame_length) of the signal, zero outside it
    (`half` = frame_length // 2 for centred frames, 0 for a signal padded beforehand). Its power comes
    from S(m), the sequential float64 sum of the first m squared samples, carried from block to block, so
    every value is bit-identical whatever the blocks. `ready` frames end inside the signal seen so far;
    `finish` gives all 1 + (N + 2 * half - frame_length) // hop of them once the signal has ended.
    """

    def __init__(self, frame_length: int, hop: int, half: int) -> None:
        self.frame_length, self.hop, self.half = frame_length, hop, half
        self.n = 0
        self._carry = 0.0
        self._s_lo: list[np.ndarray] = []
        self._s_hi: list[np.ndarray] = []
        self._k_lo = self._k_hi = 0

    def _record(self, first: int, sums: np.ndarray, k: int, offset: int) -> tuple[int, np.ndarray]:
        """S at the clipped positions k * hop + offset (k = k, k + 1, ...) that lie in (.., first + len(sums)]."""
        end = first + sums.shape[0]
        last = (end - offset) // self.hop  # last frame whose position is <= end
        if last < k:
            return k, np.zeros(0, np.float64)
        pos = np.arange(k, last + 1, dtype=np.int64) * self.hop + offset
        values = np.zeros(pos.shape[0], np.float64)  # S(m) = 0 for m <= 0, the only positions before a block
        inside = pos > first
        values[inside] = sums[pos[inside] - first - 1]
        return last + 1, values

    def feed(self, block: np.ndarray) -> None:
        for b0 in range(0, block.shape[0], RMS_BLOCK):
            part = block[b0 : b0 + RMS_BLOCK].astype(np.float64)
            sq = part * part
            sq[0] += self._carry
            sums = np.cumsum(sq)
            self._k_lo, lo = self._record(self.n, sums, self._k_lo, -self.half)
            self._k_hi, hi = self._record(self.n, sums, self._k_hi, self.frame_length - self.half)
            self._s_lo.append(lo)
            self._s_hi.append(hi)
            self._carry = float(sums[-1])
            self.n += part.shape[0]

    def _rms(self, count: int) -> np.ndarray:
        s_lo = np.concatenate(self._s_lo)[:count] if self._s_lo else np.zeros(0)
        s_hi = np.concatenate(self._s_hi)[:count] if self._s_hi else np.zeros(0)
        power = (s_hi - s_lo) / self.frame_length
        return np.sqrt(np.maximum(power, 0.0))

    def ready(self) -> np.ndarray:
        """float64 RMS of the frames that end inside the signal seen so far."""
        return self._rms(self._k_hi)

    def finish(self) -> np.ndarray:
        """float64 RMS of every frame of the whole signal (frames past its end see zeros)."""
        n_frames = max(0, 1 + (self.n + 2 * self.half - self.frame_length) // self.hop)
        for k, store in ((self._k_lo, self._s_lo), (self._k_hi, self._s_hi)):
            if n_frames > k:
                store.append(np.full(n_frames - k, self._carry))
        self._k_lo = self._k_hi = max(n_frames, self._k_hi)
        return self._rms(n_frames)


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
    stream = FrameRms(frame_length, hop, half)
    stream.feed(samples)
    return stream.finish()


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


def _linear_resize_float32(values: np.ndarray, n_out: int, start: int = 0, stop: int | None = None,
                           n_in: int | None = None) -> np.ndarray:
    """torch ``F.interpolate(mode="linear", align_corners=False)`` of [n_in] to [n_out], in float32, at the
    output positions [start, stop) only (default all). `values` may hold just the first values of the
    [n_in] input, as far as those positions reach (`n_in` gives the full length)."""
    v = np.asarray(values, dtype=np.float32)
    n_in = v.size if n_in is None else n_in
    i0, i1, lam1 = linear_resize_sources(n_in, n_out, start, n_out if stop is None else stop)
    lam0 = np.float32(1.0) - lam1
    return lam0 * v[i0] + lam1 * v[i1]


def linear_resize_sources(n_in: int, n_out: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The input indices (i0, i1 [stop - start] int64) and weight of i1 (float32) that
    `_linear_resize_float32` blends for output positions [start, stop)."""
    scale = np.float32(n_in) / np.float32(n_out)
    src = scale * (np.arange(start, stop, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    i0 = src.astype(np.int64)
    i1 = i0 + (i0 < n_in - 1)
    return i0, i1, np.clip(src - i0.astype(np.float32), np.float32(0.0), np.float32(1.0))


def rms_mix_gain(rms_source: np.ndarray, rms_converted: np.ndarray, n_out: int, rate: float, start: int = 0,
                 stop: int | None = None, n_frames: tuple[int, int] | None = None) -> np.ndarray:
    """`change_rms`'s gain for output samples [start, stop) of [n_out]: float32 [stop - start].

    rms_source / rms_converted: the two envelopes' frames (`rms_frames`), complete or as far as the range
    needs; n_frames: their full lengths when they are not complete.
    """
    n_src, n_conv = (rms_source.size, rms_converted.size) if n_frames is None else n_frames
    env_src = _linear_resize_float32(rms_source, n_out, start, stop, n_src)
    env_out = np.maximum(_linear_resize_float32(rms_converted, n_out, start, stop, n_conv), np.float32(RMS_FLOOR))
    return np.power(env_src, np.float32(1.0 - rate)) * np.power(env_out, np.float32(rate - 1.0))


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
    rms_src = rms_frames(source, source_sr // 2 * 2, source_sr // 2, pad_mode)
    rms_out = rms_frames(out, converted_sr // 2 * 2, converted_sr // 2, pad_mode)
    return out * rms_mix_gain(rms_src, rms_out, out.size, rate)


__all__ = ["RMS_BLOCK", "FrameRms", "RMS_FLOOR", "change_rms", "frame_rms", "linear_resize_sources", "rms_mix_gain", "rms_frames", "volume_envelope"]
