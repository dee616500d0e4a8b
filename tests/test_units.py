"""Unit-frame alignment matches so-vits-svc's repeat_expand_2d ("left" and "nearest") exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from svc_runtime.signal.units import align_units, left_indices

torch.set_num_threads(1)


def _reference_left(content: torch.Tensor, target_len: int) -> torch.Tensor:
    """so-vits-svc utils.repeat_expand_2d_left, restated: content [h, t] -> [h, target_len]."""
    src_len = content.shape[-1]
    target = torch.zeros([content.shape[0], target_len], dtype=torch.float)
    bounds = torch.arange(src_len + 1) * target_len / src_len
    position = 0
    for i in range(target_len):
        if not i < bounds[position + 1]:
            position += 1
        target[:, i] = content[:, position]
    return target


def _reference_nearest(content: torch.Tensor, target_len: int) -> torch.Tensor:
    return F.interpolate(content[None], size=target_len, mode="nearest")[0]


# (units, frames): 44.1 kHz/hop 512 vs 16 kHz/hop 320 ratios, exact doubling,
# identity, downsampling, a single unit frame, and long inputs where the float32
# boundaries round (the last two differ from a float64 computation).
PAIRS = [(68, 118), (50, 86), (7, 14), (33, 33), (118, 68), (1, 5), (5, 1), (997, 1723), (1500, 2584), (2047, 4093), (4239, 7741), (4014, 7192)]


@pytest.mark.parametrize("n_in, n_out", PAIRS)
@pytest.mark.parametrize("mode", ["left", "nearest"])
def test_matches_reference_exactly(n_in, n_out, mode):
    rng = np.random.default_rng(n_in * 7919 + n_out)
    units = rng.standard_normal((3, n_in)).astype(np.float32)
    reference = (_reference_left if mode == "left" else _reference_nearest)(torch.from_numpy(units), n_out)
    aligned = align_units(units, n_out, mode)
    assert aligned.shape == (3, n_out)
    assert aligned.dtype == np.float32
    np.testing.assert_array_equal(aligned, reference.numpy())


def test_left_holds_then_advances():
    # 3 units over 7 frames: boundaries 2.33, 4.67, 7 -> frames 0-2, 3-4, 5-6
    np.testing.assert_array_equal(left_indices(3, 7), [0, 0, 0, 1, 1, 2, 2])


def test_batched_leading_axes():
    units = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5)
    aligned = align_units(units, 9, "nearest")
    assert aligned.shape == (2, 4, 9)
    np.testing.assert_array_equal(aligned[1], align_units(units[1], 9, "nearest"))


def test_zero_target_frames_gives_empty():
    assert align_units(np.ones((4, 3), np.float32), 0, "left").shape == (4, 0)


@pytest.mark.parametrize(
    "units, frames, mode, message",
    [
        (np.ones(5), 3, "left", r"\[\.\.\., dim, frames\]"),
        (np.ones((4, 0)), 3, "left", "no frames"),
        (np.ones((4, 3)), 3, "linear", "unknown unit_interpolate_mode 'linear'"),
    ],
)
def test_bad_input_errors(units, frames, mode, message):
    with pytest.raises(ValueError, match=message):
        align_units(units, frames, mode)
