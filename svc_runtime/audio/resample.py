"""Sample-rate conversion with soxr (high quality), with a length that is exact by definition.

`resample_blocks` streams the same conversion: soxr's stream gives the one-shot result sample for sample.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import soxr

from svc_runtime.audio.dsp import fit_length


def resampled_length(n_samples: int, in_rate: int, out_rate: int) -> int:
    """Length of `n_samples` at `in_rate` once resampled to `out_rate`: round(n * out / in)."""
    return int((n_samples * out_rate + in_rate // 2) // in_rate)


def resample(samples: np.ndarray, in_rate: int, out_rate: int, quality: str = "HQ") -> np.ndarray:
    """[N] float32 at in_rate -> [resampled_length(N)] float32 at out_rate (soxr, linear phase)."""
    if in_rate == out_rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
    out = soxr.resample(np.ascontiguousarray(samples, dtype=np.float32), in_rate, out_rate, quality)
    return fit_length(out.astype(np.float32, copy=False), resampled_length(len(samples), in_rate, out_rate))


HOLD_BACK = 256
"""Output samples a stream keeps back until its input ends: soxr's length differs from
`resampled_length` by a sample or two, and the surplus is cut from the end."""


def resample_blocks(blocks: Iterable[np.ndarray], in_rate: int, out_rate: int, quality: str = "HQ") -> Iterator[np.ndarray]:
    """`resample` of the concatenated float32 `blocks`, as a stream of blocks (identical samples, same length)."""
    if in_rate == out_rate:
        for blk in blocks:
            yield np.ascontiguousarray(blk, dtype=np.float32)
        return
    stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=quality)
    n_in = n_out = 0
    held = np.zeros(0, np.float32)
    for blk in blocks:
        n_in += blk.shape[0]
        held = np.concatenate([held, stream.resample_chunk(np.ascontiguousarray(blk, dtype=np.float32))])
        if held.shape[0] > HOLD_BACK:
            ready, held = held[:-HOLD_BACK], held[-HOLD_BACK:]
            n_out += ready.shape[0]
            yield ready
    held = np.concatenate([held, stream.resample_chunk(np.zeros(0, np.float32), last=True)])
    remaining = resampled_length(n_in, in_rate, out_rate) - n_out
    if remaining < 0:
        raise AssertionError(f"soxr gave {-remaining} samples more than a {HOLD_BACK}-sample hold-back covers")
    yield fit_length(held, remaining)
