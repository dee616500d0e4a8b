"""Long files converted in blocks (`svc_runtime.pipeline.long_file`): the same output as converting the whole
file in memory, byte for byte, and memory that does not grow with the input's length.

The file used has what the blockwise path must reproduce: a 48 kHz stereo input (decode, mix-down and a
streamed resampler), a DC offset (the streamed DC filter), pauses (the slicer, from RMS frames of the first
pass), slices longer than one window (sliding buffers, lazy host F0, phase carry, stitching into pending
output) and, in one case, a peak above full scale (a second analysis pass) and a loudness mix (envelopes
of a stream). Peak RSS of 1 vs 20 minutes is measured in benchmarks/long_file_memory.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from svc_runtime.audio import decode_audio
from svc_runtime.audio.write import write_audio_atomic
from svc_runtime.bundle.bundle import Bundle
from svc_runtime.pipeline import Converter, ConvertOptions
from svc_runtime.pipeline.batch import BatchRunner, FileJob
from svc_runtime.pipeline.long_file import convert_long_file, plan_long_file
from tests.pipeline_fixture import small_bundle_dir, vibrato_tone
from tests.test_convert_memory import traced_peak

IN_RATE = 48000


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return Bundle.load(small_bundle_dir())


def song(seconds_each: tuple[float, ...], peak: float = 0.5, dc: float = 0.02) -> np.ndarray:
    """Stereo [N, 2] at 48 kHz: vibrato phrases separated by 1.5 s pauses, with a DC offset."""
    parts = []
    for i, seconds in enumerate(seconds_each):
        tone, _ = vibrato_tone(seconds, sr=IN_RATE, base_hz=180.0 + 40.0 * i)
        parts += [tone / np.abs(tone).max() * peak, np.zeros(int(1.5 * IN_RATE), np.float32)]
    mono = np.concatenate(parts).astype(np.float32) + dc
    return np.stack([mono, 0.8 * mono], axis=1)


def whole_file(conv: Converter, source: Path, target: Path) -> list[tuple[int, int]]:
    """Convert `source` in memory into `target`; returns its voiced slices (start, end)."""
    prepared = conv.prepare(decode_audio(source))
    slices = [(seg.start, seg.end) for seg in prepared.segments]
    write_audio_atomic(target, conv.render([prepared])[0], conv.sr)
    return slices


@pytest.mark.parametrize("case", ["plain", "loud_and_mixed"])
def test_blockwise_output_equals_whole_file_byte_for_byte(bundle, tmp_path: Path, case: str):
    options = dict(speaker="alice", f0_method="pm", max_window_seconds=2.0, context_seconds=0.25,
                   slice_db=-30.0)
    if case == "loud_and_mixed":
        options.update(loudness_mix=0.4)
    conv = Converter(bundle, ConvertOptions(**options))
    source = tmp_path / "in.wav"
    samples = song((5.5, 4.0), peak=1.6 if case == "loud_and_mixed" else 0.5)
    soundfile.write(source, samples, IN_RATE, subtype="FLOAT")
    slices = whole_file(conv, source, tmp_path / "whole.wav")
    plan = plan_long_file(conv, source)
    assert [(s.start, s.end) for s in plan.slices] == slices and len(slices) == 2
    assert plan.n_out == round(samples.shape[0] * conv.sr / IN_RATE)
    assert any("peak" in note for note in plan.notes) == (case == "loud_and_mixed")
    seconds = convert_long_file(conv, plan, tmp_path / "blocks.wav")
    assert seconds == pytest.approx(plan.n_out / conv.sr)
    assert (tmp_path / "blocks.wav").read_bytes() == (tmp_path / "whole.wav").read_bytes()
    assert soundfile.read(tmp_path / "blocks.wav")[0].std() > 0.01  # converted audio, not silence
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocks.wav", "in.wav", "whole.wav"]  # no temp left


def test_batch_sends_files_over_the_limit_through_blocks_and_keeps_isolation(bundle, tmp_path: Path):
    conv = Converter(bundle, ConvertOptions(speaker="alice", f0_method="pm", max_window_seconds=2.0,
                                            context_seconds=0.25))
    src = tmp_path / "in"
    src.mkdir()
    soundfile.write(src / "a_long.wav", song((4.0, 3.0)), IN_RATE, subtype="FLOAT")
    soundfile.write(src / "b_short.wav", song((2.0,)), IN_RATE, subtype="FLOAT")
    bad = song((4.0, 3.0))
    bad[IN_RATE * 2, 0] = np.nan  # long and broken: found in the first pass, nothing written
    soundfile.write(src / "c_broken.wav", bad, IN_RATE, subtype="FLOAT")
    jobs = [FileJob(src / n, tmp_path / "out" / n) for n in ("a_long.wav", "b_short.wav", "c_broken.wav")]
    results = list(BatchRunner(conv, long_file_seconds=5.0).run(jobs))
    assert [r.status for r in results] == ["converted", "converted", "failed"]
    assert "non-finite" in results[2].reason and not jobs[2].target.exists()
    whole_file(conv, jobs[0].source, tmp_path / "a_whole.wav")
    assert jobs[0].target.read_bytes() == (tmp_path / "a_whole.wav").read_bytes()
    assert results[0].audio_seconds == pytest.approx(soundfile.info(jobs[0].target).duration)


def test_python_heap_of_the_blockwise_path_does_not_grow_with_length(bundle, tmp_path: Path):
    """numpy buffers of both passes (decode, resampling, DC filter, slicer, slices, output) for 24 s vs 96 s:
    the 4x longer file may add per-frame arrays only (a few KiB per second), never its samples (~190 KiB/s)."""
    conv = Converter(bundle, ConvertOptions(speaker="alice", f0_method="pm", max_window_seconds=2.0,
                                            context_seconds=0.25))
    peaks = {}
    for phrases in (4, 16):
        source = tmp_path / f"in{phrases}.wav"
        soundfile.write(source, song((4.5,) * phrases), IN_RATE, subtype="FLOAT")
        target = tmp_path / f"out{phrases}.wav"
        peaks[phrases] = traced_peak(lambda s=source, t=target: convert_long_file(conv, plan_long_file(conv, s), t))
    grown_input = 12 * 6.0 * IN_RATE * 2 * 4  # the extra stereo float32 input
    assert peaks[16] - peaks[4] < 0.02 * grown_input, peaks
