"""StreamingConverter: fixed blocks, latency bound, and block-by-block vs whole-file conversion.

The whole-file reference uses the stream's causal choices (`ConvertOptions(causal=True)`:
F0 one frame late holding its last voiced value instead of interpolating across gaps,
units placed by time), no padding, slicing or DC filter, the same seed: then both feed
the generator the same F0, the same carried NSF phases and the same noise, frame for
frame, at any block size.
"""

from __future__ import annotations

import numpy as np
import pytest

from svc_runtime.bundle.bundle import Bundle
from svc_runtime.pipeline import Converter, ConvertOptions
from svc_runtime.streaming import StreamingConverter, StreamingOptions
from tests.local_model import LocalModel
from tests.pipeline_fixture import HOP, SR, small_bundle_dir, vibrato_tone

CAUSAL_WHOLE = dict(speaker="alice", f0_method="pm", pad_seconds=0.0, slice_db=-100.0, remove_dc=False, causal=True)


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return Bundle.load(small_bundle_dir())


def stream(model, x: np.ndarray, block: int, **options) -> tuple[np.ndarray, StreamingConverter, list[int]]:
    conv = StreamingConverter(model, block, StreamingOptions(speaker="alice", f0_method="pm", **options))
    joins: list[int] = []
    advance = conv._advance

    def record(k1: int) -> None:
        advance(k1)
        joins.append(k1 * conv.hop - conv.fade)

    conv._advance = record
    out = np.concatenate([conv.process(x[i : i + block]) for i in range(0, len(x) - block + 1, block)])
    return out[conv.delay_samples :], conv, joins


def compare(y: np.ndarray, whole: np.ndarray, joins: list[int], fade: int) -> tuple[float, float, float]:
    """(max error farther than the crossfade from a join, largest step within 10 ms of a join, elsewhere).

    "Elsewhere" is the larger of the stream's own largest step more than 10 ms from any join
    and the whole-file conversion's largest step: with short blocks almost every sample is
    within 10 ms of a join, and a tremolo can put the loudest cycles next to joins.
    """
    end = joins[-2]
    y, ref = y[:end], whole[:end]
    pos = np.arange(end)
    dist = np.min(np.abs(pos[:, None] - np.asarray(joins[:-2])[None, :]), axis=1)
    err = np.abs(y - ref)[dist > fade]
    step = np.abs(np.diff(y))
    near = dist[:-1] <= SR // 100
    elsewhere = max(step[~near].max() if (~near).any() else 0.0, np.abs(np.diff(ref)).max())
    return float(err.max()), float(step[near].max()), float(elsewhere)


@pytest.mark.parametrize("block_ms", [20, 100, 500])
def test_block_sizes_and_latency(bundle, block_ms):
    block = int(SR * block_ms / 1000)
    conv = StreamingConverter(bundle, block, StreamingOptions(speaker="bob", f0_method="pm"))
    assert conv.latency_samples <= block + 0.040 * SR
    out = conv.process(np.zeros(block, np.float32))
    assert out.shape == (block,) and out.dtype == np.float32


def test_block_size_limits_are_enforced(bundle):
    for ms in (19, 501):
        with pytest.raises(ValueError, match="outside 20-500 ms"):
            StreamingConverter(bundle, int(SR * ms / 1000), StreamingOptions(speaker="alice"))
    conv = StreamingConverter(bundle, 4410, StreamingOptions(speaker="alice"))
    with pytest.raises(ValueError, match="expected a block of 4410"):
        conv.process(np.zeros(100, np.float32))


@pytest.mark.parametrize("block", [882, 1536, 1600, 22050])
def test_stream_equals_whole_with_a_local_model(bundle, block):
    """Machinery proof (phase carry, noise field, F0 history, crossfade): exact up to rounding."""
    model = LocalModel(bundle)
    x, _ = vibrato_tone(2.5)
    whole = Converter(model, ConvertOptions(**CAUSAL_WHOLE)).convert(x, SR)
    y, conv, joins = stream(model, x, block, context_seconds=0.3)
    block_ms = 1000 * block / SR
    assert np.abs(y[: joins[-2]] - whole[: joins[-2]]).max() <= 1e-5  # the joins included
    far, near_step, other_step = compare(y, whole, joins, conv.fade)
    assert far <= 1e-3, f"{block_ms} ms blocks: {far:.2e} away from joins"
    assert near_step <= 1.5 * other_step, (near_step, other_step)


@pytest.mark.parametrize("block_ms", [100, 500])
def test_stream_against_whole_with_the_fixture_bundle(bundle, block_ms):
    """The exported graphs with <= 40 ms look-ahead (measured here: ~1e-5 away from joins)."""
    x, _ = vibrato_tone(2.5)
    whole = Converter(bundle, ConvertOptions(**CAUSAL_WHOLE)).convert(x, SR)
    y, conv, joins = stream(bundle, x, int(SR * block_ms / 1000), context_seconds=0.5)
    far, near_step, other_step = compare(y, whole, joins, conv.fade)
    assert far <= 1e-3, f"{block_ms} ms blocks: {far:.2e} away from joins"
    assert near_step <= 1.5 * other_step, (near_step, other_step)


def test_generator_context_can_be_shorter_than_the_unit_context(bundle):
    """The generator window gets its own left context: with a model of +-1 frame receptive field a
    3-frame generator context still reproduces whole-file conversion exactly, while the units keep 0.3 s."""
    model = LocalModel(bundle)
    x, _ = vibrato_tone(2.0)
    whole = Converter(model, ConvertOptions(**CAUSAL_WHOLE)).convert(x, SR)
    y, conv, joins = stream(model, x, 1600, context_seconds=0.3, generator_context_seconds=3 * HOP / SR)
    assert conv.context == 3 and conv.unit_context == 15
    assert np.abs(y[: joins[-2]] - whole[: joins[-2]]).max() <= 1e-5
    with pytest.raises(ValueError, match="generator context must be >= 0"):
        StreamingOptions(generator_context_seconds=-0.1)
