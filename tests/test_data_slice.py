"""Slicing a long synthesised recording: clip bounds, full coverage of the voiced audio, reports."""

import numpy as np
import soundfile
from typer.testing import CliRunner

from svc_train.cli import app
from svc_train.data.slice import ClipSettings, plan_clips

SR = 16000


def _tone(seconds: float, f0: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    vibrato = 1 + 0.01 * np.sin(2 * np.pi * 5 * t)
    phase = 2 * np.pi * np.cumsum(f0 * vibrato) / SR
    return (0.3 * np.sin(phase) + 0.1 * np.sin(2 * phase) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _recording() -> tuple[np.ndarray, np.ndarray]:
    """Bursts of tone separated by pauses of noise at -80 dBFS; returns (audio, voiced mask)."""
    rng = np.random.default_rng(3)
    # (burst seconds, pause seconds after it): long pauses the slicer cuts at, then a 12 s passage
    # whose 0.12 s breaths are too short for the slicer (min_interval 300 ms) and must be used to
    # split it below max_length, then a lone short phrase at the end that must be joined.
    layout = [(1.5, 0.6), (2.0, 0.8), (3.5, 1.2), (1.2, 0.12), (1.0, 0.7)]
    layout += [(1.4, 0.12)] * 8 + [(1.4, 0.9), (2.5, 0.5), (0.6, 0.4)]
    pieces, mask = [], []
    lead = np.zeros(int(0.5 * SR), np.float32)
    pieces.append(lead)
    mask.append(np.zeros(lead.size, bool))
    for burst, pause in layout:
        b = _tone(burst, rng.uniform(120, 300), rng)
        p = (1e-4 * rng.standard_normal(int(pause * SR))).astype(np.float32)
        pieces += [b, p]
        mask += [np.ones(b.size, bool), np.zeros(p.size, bool)]
    return np.concatenate(pieces), np.concatenate(mask)


def test_clips_within_bounds_and_cover_all_voiced_audio():
    audio, voiced = _recording()
    settings = ClipSettings(min_length_s=2.0, max_length_s=5.0)
    plan = plan_clips(audio, SR, settings)
    assert plan.too_long == [] and plan.too_short == []
    lengths = [(end - start) / SR for start, end in plan.clips]
    assert len(plan.clips) >= 7
    assert all(2.0 <= length <= 5.0 for length in lengths), lengths
    covered = np.zeros(audio.size, bool)
    previous_end = 0
    for start, end in plan.clips:
        assert start >= previous_end  # in order, no overlap
        covered[start:end] = True
        previous_end = end
    assert not np.any(voiced & ~covered), f"{np.count_nonzero(voiced & ~covered)} voiced samples left out"
    # Only silence was dropped: what is left out is quiet.
    assert np.max(np.abs(audio[~covered])) < 1e-3
    # The concatenated clips hold every voiced sample, in order.
    joined = np.concatenate([audio[s:e] for s, e in plan.clips])
    assert joined.size >= np.count_nonzero(voiced)


def test_uncuttable_passage_is_reported_not_dropped():
    rng = np.random.default_rng(0)
    audio = np.concatenate([_tone(12.0, 200.0, rng), np.zeros(SR // 2, np.float32), _tone(3.0, 150.0, rng)])
    plan = plan_clips(audio, SR, ClipSettings(min_length_s=2.0, max_length_s=5.0))
    assert len(plan.too_long) == 1
    start, end = plan.too_long[0]
    assert start == 0 and (end - start) / SR >= 12.0
    assert plan.too_long[0] in plan.clips  # still written, the user decides


def test_slice_cli_writes_clips_and_reports(tmp_path):
    audio, _ = _recording()
    (tmp_path / "in" / "alice").mkdir(parents=True)
    soundfile.write(tmp_path / "in" / "alice" / "song.flac", audio, SR)
    (tmp_path / "in" / "alice" / "broken.wav").write_bytes(b"not audio at all")
    result = CliRunner().invoke(
        app, ["slice", str(tmp_path / "in"), str(tmp_path / "out"), "--min-length", "2", "--max-length", "5"]
    )
    assert result.exit_code == 0, result.output
    clips = sorted((tmp_path / "out" / "alice").glob("song_*.wav"))
    assert len(clips) >= 7
    for clip in clips:
        info = soundfile.info(clip)
        assert info.samplerate == SR and 2.0 <= info.frames / SR <= 5.0
    output = result.output.replace("\n", "")  # rich wraps long lines
    assert "broken.wav: not a readable audio file" in output and "skipped" in output
