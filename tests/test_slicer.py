"""Silence slicer, chunk plans and crossfade stitching (pure numpy)."""

import numpy as np
import pytest

from svc_runtime.signal.slicer import (
    Chunk,
    SlicerConfig,
    frame_rms,
    plan_chunks,
    slice_on_silence,
    stitch,
)


def test_frame_rms_matches_librosa():
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(0)
    x = rng.standard_normal(10007).astype(np.float32)
    ours = frame_rms(x, 1024, 256)
    ref = librosa.feature.rms(y=x, frame_length=1024, hop_length=256)[0]
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6)


def burst_signal(sr: int, pattern: list[tuple[float, bool]]) -> tuple[np.ndarray, list[int]]:
    parts, edges, pos = [], [], 0
    rng = np.random.default_rng(1)
    for seconds, loud in pattern:
        n = int(sr * seconds)
        parts.append((0.3 * rng.standard_normal(n) if loud else 1e-4 * rng.standard_normal(n)).astype(np.float32))
        pos += n
        edges.append(pos)
    return np.concatenate(parts), edges


def test_segments_cover_input_and_split_at_long_silences():
    sr = 16000
    x, edges = burst_signal(sr, [(6.0, True), (1.0, False), (6.0, True), (0.1, False), (1.0, True)])
    segs = slice_on_silence(x, sr)
    assert segs[0].start == 0 and segs[-1].end == len(x)
    assert all(a.end == b.start for a, b in zip(segs, segs[1:]))
    # Default max_silence_kept (5 s) keeps the 1 s gap attached: one cut inside it, nothing marked
    # silent; the 0.1 s gap is shorter than min_interval (300 ms) and is not cut.
    assert [s.silent for s in segs] == [False, False]
    assert edges[0] < segs[0].end < edges[1]


def test_long_silence_becomes_a_silent_segment():
    sr = 16000
    x, edges = burst_signal(sr, [(6.0, True), (2.0, False), (6.0, True)])
    segs = slice_on_silence(x, sr, SlicerConfig(max_silence_kept_ms=500))
    assert [s.silent for s in segs] == [False, True, False]
    assert all(a.end == b.start for a, b in zip(segs, segs[1:]))
    gap = segs[1]
    assert edges[0] - 1 <= gap.start <= edges[0] + 0.55 * sr
    assert edges[1] - 0.55 * sr <= gap.end <= edges[1] + 1
    for s in segs:
        level = np.sqrt(np.mean(x[s.start : s.end] ** 2))
        assert (level < 0.01) == s.silent


def test_short_and_unbroken_inputs_are_one_segment():
    sr = 16000
    x, _ = burst_signal(sr, [(3.0, True)])
    assert [(s.start, s.end, s.silent) for s in slice_on_silence(x, sr)] == [(0, len(x), False)]
    x, _ = burst_signal(sr, [(0.2, True)])
    assert len(slice_on_silence(x, sr)) == 1


def test_all_silent_input_is_marked_silent():
    sr = 16000
    segs = slice_on_silence(np.zeros(sr * 8, np.float32), sr)
    assert any(s.silent for s in segs)
    assert sum(s.length for s in segs) == sr * 8


def test_slicer_config_is_validated():
    with pytest.raises(ValueError, match="min_length_ms >= min_interval_ms"):
        SlicerConfig(min_length_ms=100, min_interval_ms=300)


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
