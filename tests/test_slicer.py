"""Silence slicer (pure numpy)."""

import numpy as np
import pytest

from svc_runtime.signal.slicer import SlicerConfig, frame_rms, slice_on_silence


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
