"""Conversion memory does not grow with whole-file float64 temporaries, and the blockwise code changes no sample.

Numbers asserted here:
- the slicer's blockwise RMS equals the whole-array float64 form bit for bit (random, silent,
  tiny, odd frame/hop inputs) and gives the same slices; the blockwise DC filter equals the
  whole-array filter bit for bit, in place or not, for any block size;
- decoding (mono, stereo, loud, other rates) gives the same samples as reading the whole file;
  writing gives the same PCM/FLAC bytes as one `soundfile.write` of the clipped signal;
- a 20 s, 48 kHz stereo conversion through `BatchRunner` (decode, prepare, render, write) writes
  the same bytes with tiny odd blocks as with blocks larger than the input (the whole-array form);
- Python-heap peaks (tracemalloc, numpy buffers included) of the slicer, the DC filter and writing
  do not grow from a 20 s to an 80 s input (decoding grows by the decoded signal only), where the
  whole-array forms grew by several float64 copies of the input.
"""

from __future__ import annotations

import hashlib
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile

from svc_runtime.audio import decode as decode_module
from svc_runtime.audio import dsp
from svc_runtime.audio import write as write_module
from svc_runtime.audio.decode import decode_audio
from svc_runtime.audio.write import write_audio_atomic
from svc_runtime.signal import slicer, volume
from svc_runtime.signal.slicer import SlicerConfig, frame_rms, slice_on_silence


def whole_array_rms(samples: np.ndarray, frame_length: int, hop: int) -> np.ndarray:
    """The slicer's RMS as it was computed before (whole-array float64 padding and cumulative sum)."""
    half = frame_length // 2
    x = np.pad(samples.astype(np.float64), (half, half))
    n_frames = 1 + (x.shape[0] - frame_length) // hop
    c = np.concatenate(([0.0], np.cumsum(x * x)))
    starts = np.arange(max(n_frames, 0)) * hop
    power = (c[starts + frame_length] - c[starts]) / frame_length
    return np.sqrt(np.maximum(power, 0.0))


def whole_array_remove_dc(samples: np.ndarray, sample_rate: int, cutoff_hz: float = 25.0) -> np.ndarray:
    width = max(3, round(sample_rate / cutoff_hz) | 1)
    if samples.shape[0] <= width:
        return (samples - samples.mean()).astype(np.float32)
    low = dsp._moving_average(dsp._moving_average(samples, width), width)
    return (samples - low).astype(np.float32)


def speechlike(seconds: float, sr: int, seed: int, dc: float = 0.0) -> np.ndarray:
    """Noise bursts of random length separated by random pauses (some silent, some quiet)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    x = np.zeros(n, np.float32)
    pos = 0
    while pos < n:
        loud = int(rng.uniform(0.2, 7.0) * sr)
        x[pos : pos + loud] = rng.standard_normal(min(loud, n - pos)) * rng.uniform(0.05, 0.5)
        pos += loud + int(rng.uniform(0.05, 1.5) * sr)
        if pos < n and rng.random() < 0.3:
            x[pos - int(0.05 * sr) : pos] += 1e-4 * rng.standard_normal(int(0.05 * sr))
    return x + np.float32(dc)


@pytest.mark.parametrize("block", [1, 7, 1000, 1 << 16])
def test_blockwise_rms_equals_whole_array_rms(monkeypatch, block):
    monkeypatch.setattr(volume, "RMS_BLOCK", block)
    rng = np.random.default_rng(block)
    cases = [np.zeros(5000, np.float32), np.zeros(1, np.float32), np.ones(3, np.float32)]
    for _ in range(25 if block > 1 else 6):
        n = int(rng.integers(1, 40000 if block > 1 else 4000))
        cases.append((rng.standard_normal(n) * rng.uniform(1e-5, 2.0)).astype(np.float32))
    for x in cases:
        for frame_length, hop in ((1, 1), (4, 3), (1024, 256), (int(rng.integers(2, 3000)), int(rng.integers(1, 900)))):
            ours, ref = frame_rms(x, frame_length, hop), whole_array_rms(x, frame_length, hop)
            assert ours.shape == ref.shape and ours.dtype == ref.dtype
            assert np.array_equal(ours, ref), (x.shape, frame_length, hop)


def test_blockwise_rms_gives_the_same_slices(monkeypatch):
    configs = [SlicerConfig(), SlicerConfig(threshold_db=-30.0, min_length_ms=2000, min_interval_ms=200, hop_ms=10,
                                            max_silence_kept_ms=600)]
    inputs = [speechlike(s, sr, seed, dc) for seed, (s, sr, dc) in
              enumerate([(30.0, 44100, 0.0), (25.0, 48000, 0.003), (40.0, 16000, 0.0), (12.0, 22050, 0.0)])]
    inputs += [np.zeros(44100 * 8, np.float32), np.full(44100 * 6, 0.2, np.float32)]
    checked = 0
    for x in inputs:
        for sr in (16000, 44100):
            for cfg in configs:
                ours = slice_on_silence(x, sr, cfg)
                monkeypatch.setattr(slicer, "frame_rms", whole_array_rms)
                ref = slice_on_silence(x, sr, cfg)
                monkeypatch.undo()
                assert ours == ref
                checked += len(ours)
    assert checked > 40  # the inputs really are cut into many slices


@pytest.mark.parametrize("block", [1, 5, 997, 1 << 16])
def test_blockwise_dc_filter_equals_whole_array_filter(monkeypatch, block):
    monkeypatch.setattr(dsp, "DC_BLOCK", block)
    rng = np.random.default_rng(block)
    lengths = [1, 100, 1763, 1764, 1765, 1766, 3531, 5000]
    lengths += [int(v) for v in rng.integers(2000, 60000 if block > 1 else 9000, 4)]
    for n in lengths:
        for sr in (8000, 44100, 48000):
            x = (rng.standard_normal(n) * 0.2 + rng.uniform(-0.5, 0.5)).astype(np.float32)
            ref = whole_array_remove_dc(x, sr)
            assert np.array_equal(dsp.remove_dc(x, sr), ref), (n, sr)
            inplace = x.copy()
            out = dsp.remove_dc(inplace, sr, out=inplace)
            assert out is inplace and np.array_equal(inplace, ref), (n, sr)


def test_decode_in_blocks_equals_whole_file_read(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(decode_module, "READ_BLOCK", 1000)
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((23456, 3)) * 0.4).astype(np.float32)
    files = {
        "mono.wav": (x[:, 0], 44100, "PCM_16"), "stereo.flac": (np.clip(x[:, :2], -1, 1), 48000, "PCM_24"),
        "three.wav": (x, 22050, "FLOAT"), "loud.wav": (x[:, 1] * 3.0, 16000, "FLOAT"),
    }
    for name, (data, sr, subtype) in files.items():
        soundfile.write(tmp_path / name, data, sr, subtype=subtype)
        whole, _ = soundfile.read(tmp_path / name, dtype="float32", always_2d=True)
        mono = whole.mean(axis=1, dtype=np.float64).astype(np.float32) if whole.shape[1] > 1 else whole[:, 0]
        peak = float(np.max(np.abs(mono)))
        expected = (mono * (1.0 / peak)).astype(np.float32) if peak > 1.0 else mono
        decoded = decode_audio(tmp_path / name)
        assert decoded.sample_rate == sr and decoded.channels == data.reshape(len(data), -1).shape[1]
        assert decoded.samples.dtype == np.float32 and np.array_equal(decoded.samples, expected), name
        assert bool(decoded.notes) == (peak > 1.0)


def test_blockwise_write_gives_the_same_bytes(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(write_module, "WRITE_BLOCK", 777)
    x = (np.random.default_rng(4).standard_normal(20000) * 0.8).astype(np.float32)
    for fmt, subtype in (("wav", None), ("wav", "PCM_24"), ("flac", None)):
        ours = write_audio_atomic(tmp_path / f"ours.{fmt}", x, 44100, fmt=fmt, subtype=subtype)
        container, default = write_module.OUTPUT_FORMATS[fmt]
        soundfile.write(tmp_path / f"ref.{fmt}", np.clip(x, -1.0, 1.0), 44100, format=container,
                        subtype=subtype or default)
        assert ours.read_bytes() == (tmp_path / f"ref.{fmt}").read_bytes(), (fmt, subtype)
    bad = x.copy()
    bad[15000] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        write_audio_atomic(tmp_path / "bad.wav", bad, 44100)
    assert not (tmp_path / "bad.wav").exists()


def traced_peak(fn) -> int:
    """Peak bytes of Python-heap allocations (numpy buffers included) while `fn()` runs, above the start."""
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


def stage_peaks(seconds: float, folder: Path) -> tuple[int, dict[str, int]]:
    sr = 44100
    x = speechlike(seconds, sr, seed=9, dc=0.01)
    y = x.copy()
    soundfile.write(folder / "in.wav", np.stack([x, 0.5 * x], axis=1), sr, subtype="FLOAT")
    return x.nbytes, {
        "slicer": traced_peak(lambda: slice_on_silence(x, sr)),
        "dc filter": traced_peak(lambda: dsp.remove_dc(y, sr, out=y)),
        "decode": traced_peak(lambda: decode_audio(folder / "in.wav")),
        "write": traced_peak(lambda: write_audio_atomic(folder / "out.wav", x, sr)),
    }


def test_stage_memory_does_not_grow_with_the_input(tmp_path: Path):
    short_bytes, short = stage_peaks(20.0, tmp_path)
    long_bytes, long = stage_peaks(80.0, tmp_path)
    grown = long_bytes - short_bytes  # ~10 MiB more mono float32 input
    # the whole-array forms grew by ~8x (slicer), ~10x (DC filter), ~3.3x (decode, stereo) and ~1.3x (write) of it
    for stage in ("slicer", "dc filter", "write"):
        assert long[stage] - short[stage] < 0.02 * grown, (stage, short[stage], long[stage])
        assert long[stage] < 0.5 * long_bytes, (stage, long[stage])  # block scratch only
    assert long["decode"] - short["decode"] < 1.05 * grown  # the decoded signal itself, nothing more


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_conversion_writes_the_same_bytes_with_any_block_size(tmp_path: Path, monkeypatch):
    from svc_runtime.bundle.bundle import Bundle
    from svc_runtime.pipeline.batch import BatchRunner, FileJob
    from svc_runtime.pipeline.convert import Converter
    from svc_runtime.pipeline.options import ConvertOptions
    from tests.pipeline_fixture import small_bundle_dir, vibrato_tone

    sr_in = 48000
    tone, _ = vibrato_tone(20.0, sr=sr_in)
    gate = speechlike(20.0, sr_in, seed=5)[: tone.shape[0]] != 0  # sung phrases with pauses between them
    x = tone * gate + np.float32(0.004)  # a DC offset for the filter to remove
    soundfile.write(tmp_path / "in.wav", np.stack([x, 0.8 * x], axis=1), sr_in, subtype="PCM_24")
    conv = Converter(Bundle.load(small_bundle_dir()), ConvertOptions(speaker="alice", f0_method="pm",
                                                                     max_window_seconds=4.0, context_seconds=0.5))
    huge = 1 << 40  # one block: the whole-array form of every blockwise step
    digests = {}
    for name, block in (("whole", huge), ("tiny", 1237)):
        for module, attr in ((volume, "RMS_BLOCK"), (dsp, "DC_BLOCK"), (decode_module, "READ_BLOCK"),
                             (write_module, "WRITE_BLOCK")):
            monkeypatch.setattr(module, attr, block)
        target = tmp_path / f"{name}.wav"
        [result] = BatchRunner(conv).run([FileJob(tmp_path / "in.wav", target)])
        assert result.status == "converted", result.reason
        digests[name] = file_digest(target)
    assert digests["whole"] == digests["tiny"]
    out, out_sr = soundfile.read(tmp_path / "tiny.wav", dtype="float32")
    assert out_sr == conv.sr and out.shape[0] == round(x.shape[0] * conv.sr / sr_in)
    assert np.abs(out).max() > 1e-3  # something was converted


def test_a_prepared_slice_holds_only_its_16khz_audio():
    """Units, F0 and phases live inside the conversion graph now: until its windows run, a slice of a
    model without vol_embedding keeps just its 16 kHz copy (~0.36 of the model-rate bytes) and the host F0."""
    from svc_runtime.audio import DecodedAudio
    from svc_runtime.bundle.bundle import Bundle
    from svc_runtime.pipeline.convert import Converter
    from svc_runtime.pipeline.options import ConvertOptions
    from tests.pipeline_fixture import SR, small_bundle_dir, vibrato_tone

    conv = Converter(Bundle.load(small_bundle_dir()), ConvertOptions(speaker="alice", f0_method="pm", clip_seconds=1.0,
                                                                      context_seconds=0.25, crossfade_seconds=0.02))
    prepared = conv.prepare(DecodedAudio(vibrato_tone(3.0)[0], SR, 1))
    for seg in prepared.segments:
        assert seg.audio is None and seg.wav16k.dtype == np.float32
        assert seg.wav16k.shape[0] == (seg.n_frames * 512 * 16000 + SR // 2) // SR
        assert seg.f0.shape == (seg.n_frames,)
    conv.render([prepared])
    assert all(seg.wav16k is None and seg.f0 is None for seg in prepared.segments)
