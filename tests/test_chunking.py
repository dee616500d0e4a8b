"""Chunk plans and crossfade stitching (pure numpy)."""

import numpy as np
import pytest

from svc_runtime.signal.chunking import Chunk, plan_chunks, stitch


@pytest.mark.parametrize("n, window, context", [(1000, 200, 30), (201, 200, 30), (200, 200, 30), (57, 200, 30), (999, 64, 16)])
def test_plan_chunks_tiles_with_equal_windows_and_context(n: int, window: int, context: int):
    chunks = plan_chunks(n, window, context)
    assert chunks[0].keep_start == 0 and chunks[-1].keep_end == n
    assert all(a.keep_end == b.keep_start for a, b in zip(chunks, chunks[1:]))
    if n > window:
        assert {c.length for c in chunks} == {window}
        for c in chunks:
            assert 0 <= c.win_start and c.win_end <= n
            if c.keep_start > 0:
                assert c.keep_start - c.win_start >= context
            if c.keep_end < n:
                assert c.win_end - c.keep_end >= context
    else:
        assert chunks == [Chunk(0, n, 0, n)]


def test_stitch_reconstructs_identical_pieces_exactly():
    rng = np.random.default_rng(3)
    hop, n_frames, fade = 10, 500, 24
    truth = rng.standard_normal(n_frames * hop).astype(np.float32)
    out = np.zeros_like(truth)
    for c in plan_chunks(n_frames, 120, 20):
        piece = truth[c.win_start * hop : c.win_end * hop]
        stitch(out, piece, c.win_start * hop, c.keep_start * hop, c.keep_end * hop, fade)
    np.testing.assert_allclose(out, truth, atol=1e-6)


def test_stitch_crossfades_linearly_between_different_pieces():
    out = np.zeros(100, np.float32)
    stitch(out, np.ones(100, np.float32), 0, 0, 50, 20)
    stitch(out, np.full(100, 3.0, np.float32), 0, 50, 100, 20)
    assert np.all(out[:40] == 1.0) and np.all(out[60:] == 3.0)
    assert np.all(np.diff(out[39:61]) > 0)
    steps = np.diff(out[40:60])
    assert np.allclose(steps, 2.0 / 20, atol=1e-5)


def test_stitch_refuses_a_piece_too_short_for_the_fade():
    out = np.zeros(100, np.float32)
    with pytest.raises(ValueError, match="crossfade needs"):
        stitch(out, np.ones(50, np.float32), 0, 0, 50, 20)


def test_stitch_clips_to_the_owned_range_and_keeps_outer_edges_unfaded():
    """A slice's window placed into a file: nothing lands outside `clip`, and an edge without a neighbour
    (fade_in / fade_out False) keeps the piece's own samples even where a join would fade."""
    out = np.zeros(100, np.float32)
    stitch(out, np.ones(70, np.float32), -10, -10, 50, 20, fade_in=False, fade_out=True, clip=(5, 95))
    assert np.all(out[:5] == 0.0) and np.all(out[5:40] == 1.0)
    assert np.all(np.diff(out[39:61]) < 0) and np.all(out[60:] == 0.0)


def test_stitch_of_a_stream_span_carries_the_faded_tail():
    """The streaming use: a span [lo, hi + fade) whose first `fade` samples hold the previous piece's tail
    and whose last `fade` samples become the next tail; a constant signal passes through unchanged."""
    fade, n = 8, 40
    tail = np.zeros(fade, np.float32)
    pieces = []
    for _ in range(3):
        span = np.zeros(n + fade, np.float32)
        span[:fade] = tail
        stitch(span, np.full(n + fade, 2.0, np.float32), 0, fade // 2, n + fade // 2, fade, fade_in=True,
               fade_out=True)
        tail = span[n:].copy()
        pieces.append(span[:n])
    joined = np.concatenate(pieces)
    assert np.all(joined[fade:] == 2.0)  # after the first fade-in, tails and heads sum to the signal exactly
    np.testing.assert_array_equal(joined[:fade], 2.0 * ((np.arange(fade) + 0.5) / fade).astype(np.float32))
