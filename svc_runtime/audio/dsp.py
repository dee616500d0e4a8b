"""Small pure functions on mono float32 signals: DC removal, peak limiting, length fitting."""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterable, Iterator

import numpy as np

DC_BLOCK = 1 << 16
"""Samples per step of the blockwise DC filter (its float64 scratch is a few blocks, not the input)."""


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of width `width` (odd) with reflected edges; same length as x (float64).

    Reference (whole-array) form of `_moving_average_blocks`; both give identical values.
    """
    half = width // 2
    padded = np.pad(x.astype(np.float64), (half + 1, half), mode="reflect")
    c = np.cumsum(padded)
    return (c[width:] - c[:-width]) / width


def _reflect_padded(blocks: Iterator[np.ndarray], left: int, right: int) -> Iterator[np.ndarray]:
    """A stream of float64 blocks with numpy's "reflect" padding (`left` before, `right` after) added.

    The stream must hold more than max(left, right) values; only the head and tail needed for
    the reflections are buffered.
    """
    pending = np.zeros(0, np.float64)
    started = False
    for blk in blocks:
        pending = np.concatenate([pending, blk.astype(np.float64, copy=False)])
        if not started and pending.shape[0] > left:
            yield pending[left:0:-1].copy()
            started = True
        if started and pending.shape[0] > right + 1:
            yield pending[: -(right + 1)]
            pending = pending[-(right + 1) :].copy()
    if not started:
        yield pending[left:0:-1].copy()
    yield pending
    yield pending[-2 : -right - 2 : -1].copy() if right > 0 else pending[:0]


def _moving_average_blocks(blocks: Iterator[np.ndarray], width: int) -> Iterator[np.ndarray]:
    """`_moving_average`'s values as a stream: float64 blocks in (the unpadded signal), float64 blocks out.

    The running sum is carried into each block's first element, so every value is bit-identical to the
    whole-array cumulative sum; only the last `width` sums are kept between blocks.
    """
    half = width // 2
    carry = 0.0
    tail = np.zeros(0, np.float64)
    for blk in _reflect_padded(blocks, half + 1, half):
        if blk.shape[0] == 0:
            continue
        part = blk.astype(np.float64, copy=True)
        part[0] += carry
        sums = np.cumsum(part)
        carry = float(sums[-1])
        window = np.concatenate([tail, sums])
        if window.shape[0] > width:
            yield (window[width:] - window[: window.shape[0] - width]) / width
            window = window[window.shape[0] - width :]
        tail = window.copy() if window.base is not None else window


def _blocks(x: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, x.shape[0], size):
        yield x[start : start + size]


def remove_dc_blocks(blocks: Iterable[np.ndarray], sample_rate: int, cutoff_hz: float = 25.0) -> Iterator[np.ndarray]:
    """`remove_dc` of the concatenated float32 `blocks`, as a stream of float32 blocks (identical values).

    Memory O(block + width): the input is held only until its moving averages have passed it.
    """
    width = dc_filter_width(sample_rate, cutoff_hz)
    head: list[np.ndarray] = []
    seen = 0

    def recorded() -> Iterator[np.ndarray]:  # the input, also kept in `head` until filtered
        nonlocal seen
        for blk in blocks:
            blk = np.asarray(blk, dtype=np.float32)
            seen += blk.shape[0]
            head.append(blk)
            yield blk

    source = recorded()
    for _ in source:  # the short form (n <= width) needs the whole input first
        if seen > width:
            break
    else:
        x = np.concatenate(head) if head else np.zeros(0, np.float32)
        if x.shape[0]:
            yield (x - x.mean()).astype(np.float32)
        return
    kept = collections.deque(head)  # input not yet filtered, from sample `cursor` on
    head.clear()
    cursor = 0
    for part in _moving_average_blocks(_moving_average_blocks(_blocks_of(itertools.chain(list(kept), source),
                                                                         DC_BLOCK), width), width):
        kept.extend(head)
        head.clear()
        k, done = part.shape[0], 0
        while done < k:  # part <- input - part, in float64 as the whole-array form, piece by piece
            x = kept[0]
            m = min(x.shape[0], k - done)
            np.subtract(x[:m], part[done : done + m], out=part[done : done + m])
            if m == x.shape[0]:
                kept.popleft()
            else:
                kept[0] = x[m:]
            done += m
        yield part.astype(np.float32)
        cursor += k
    if cursor != seen:
        raise AssertionError(f"DC filter produced {cursor} samples for {seen}")


def _blocks_of(stream: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Re-cut a stream of arrays into pieces of at most `size` (the filter's float64 scratch stays small)."""
    for blk in stream:
        for start in range(0, blk.shape[0], size):
            yield blk[start : start + size]


def dc_filter_width(sample_rate: int, cutoff_hz: float = 25.0) -> int:
    """The boxcar width of `remove_dc` (odd, samples)."""
    return max(3, int(round(sample_rate / cutoff_hz)) | 1)


def remove_dc(
    samples: np.ndarray, sample_rate: int, cutoff_hz: float = 25.0, out: np.ndarray | None = None
) -> np.ndarray:
    """Zero-phase high-pass: subtract a triangular (twice boxcar) moving average.

    The boxcar's first null sits at `cutoff_hz`, so a constant or slowly drifting offset
    is removed and the voice band (above ~40 Hz) passes within 0.4 dB. [N] -> [N] float32.
    Computed in blocks (`remove_dc_blocks`: memory O(block + width), values identical to the
    whole-array form). `out`: where to write the result ([N] float32; may be `samples` itself).
    """
    n = samples.shape[0]
    if out is None:
        out = np.empty(n, np.float32)
    cursor = 0
    # the stream copies the input (concatenation) before its output reaches it, so writing into samples is safe
    for part in remove_dc_blocks(_blocks(samples, DC_BLOCK), sample_rate, cutoff_hz):
        out[cursor : cursor + part.shape[0]] = part
        cursor += part.shape[0]
    return out


def limit_peak(samples: np.ndarray, limit: float = 0.99, out: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Scale `samples` so |peak| <= limit; returns (samples, gain), gain 1.0 when untouched.

    `out`: where the scaled samples go (may be `samples` itself); default a new array. The peak is
    read with max / min, so no |samples| copy is made.
    """
    peak = float(np.maximum(samples.max(), -samples.min())) if samples.size else 0.0
    if peak <= limit:
        return samples, 1.0
    gain = limit / peak
    if out is None:
        return (samples * gain).astype(np.float32), gain
    np.multiply(samples, gain, out=out)
    return out, gain


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad the last axis to exactly `length` samples."""
    n = samples.shape[-1]
    if n == length:
        return samples
    if n > length:
        return samples[..., :length]
    pad = [(0, 0)] * (samples.ndim - 1) + [(0, length - n)]
    return np.pad(samples, pad)
