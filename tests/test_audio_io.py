"""Audio I/O: decoding every kind of file, mono mix, resampling lengths, DC removal, atomic writes."""

from pathlib import Path

import numpy as np
import pytest
import soundfile

from svc_runtime.audio import (
    AudioInputError,
    decode_audio,
    fit_length,
    remove_dc,
    resample,
    resampled_length,
    write_audio_atomic,
)


def tone(sr: int, seconds: float, hz: float = 220.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_decode_wav_flac_ogg_mono(tmp_path: Path):
    x = tone(44100, 0.5)
    for ext, fmt, tol in (("wav", "WAV", 1e-4), ("flac", "FLAC", 1e-4), ("ogg", "OGG", 0.05)):
        p = tmp_path / f"a.{ext}"
        soundfile.write(p, x, 44100, format=fmt)
        d = decode_audio(p)
        assert d.sample_rate == 44100 and d.channels == 1
        assert d.samples.dtype == np.float32 and d.samples.ndim == 1
        n = min(len(x), len(d.samples))
        assert abs(len(d.samples) - len(x)) <= 2048
        assert np.max(np.abs(d.samples[:n] - x[:n])) < tol, ext


def test_stereo_is_mixed_to_mean(tmp_path: Path):
    x = tone(48000, 0.3)
    p = tmp_path / "st.wav"
    soundfile.write(p, np.stack([x, 0.6 * x], axis=1), 48000, subtype="FLOAT")
    d = decode_audio(p)
    assert d.channels == 2
    np.testing.assert_allclose(d.samples, 0.8 * x, atol=1e-6)


def test_u8_decodes_around_zero(tmp_path: Path):
    p = tmp_path / "u8.wav"
    soundfile.write(p, tone(16000, 0.5, amp=0.3), 16000, subtype="PCM_U8")
    d = decode_audio(p)
    assert abs(float(d.samples.mean())) < 0.01
    assert 0.25 < np.max(np.abs(d.samples)) < 0.35


@pytest.mark.parametrize(
    "content, needle",
    [
        (b"", "empty"),
        (b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00", "not a readable audio file"),
        ("just some text\n".encode(), "not a readable audio file"),
    ],
)
def test_unreadable_files_are_clear_errors(tmp_path: Path, content: bytes, needle: str):
    p = tmp_path / "bad.wav"
    p.write_bytes(content)
    with pytest.raises(AudioInputError) as e:
        decode_audio(p)
    assert needle in str(e.value) and str(p) in str(e.value)


def test_zero_frames_too_short_and_nan_rejected(tmp_path: Path):
    p = tmp_path / "zero.wav"
    soundfile.write(p, np.zeros(0, np.float32), 44100)
    with pytest.raises(AudioInputError, match="no audio samples"):
        decode_audio(p)
    p = tmp_path / "tiny.wav"
    soundfile.write(p, tone(44100, 0.01), 44100)
    with pytest.raises(AudioInputError, match=r"too short: 10 ms; the minimum is 100 ms"):
        decode_audio(p)
    x = tone(44100, 0.5)
    x[100] = np.nan
    x[200] = np.inf
    p = tmp_path / "nan.wav"
    soundfile.write(p, x, 44100, subtype="FLOAT")
    with pytest.raises(AudioInputError, match="2 non-finite samples"):
        decode_audio(p)


def test_loud_float_is_scaled_not_clipped(tmp_path: Path):
    p = tmp_path / "loud.wav"
    x = tone(44100, 0.5, amp=4.0)
    soundfile.write(p, x, 44100, subtype="FLOAT")
    d = decode_audio(p)
    assert np.max(np.abs(d.samples)) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(d.samples, x / np.max(np.abs(x)), atol=1e-6)
    assert any("scaled by 0.250" in n for n in d.notes)


@pytest.mark.parametrize("sr_in, sr_out", [(44100, 16000), (8000, 44100), (96000, 44100), (48000, 48000)])
def test_resample_length_and_content(sr_in: int, sr_out: int):
    x = tone(sr_in, 0.777, hz=300.0)
    y = resample(x, sr_in, sr_out)
    assert y.dtype == np.float32
    assert len(y) == resampled_length(len(x), sr_in, sr_out) == round(len(x) * sr_out / sr_in)
    ref = tone(sr_out, len(y) / sr_out, hz=300.0)[: len(y)]
    mid = slice(len(y) // 10, -len(y) // 10)
    assert np.max(np.abs(y[mid] - ref[mid])) < 2e-3


def test_remove_dc_keeps_voice_band():
    sr = 16000
    x = tone(sr, 2.0, hz=110.0, amp=0.3)
    y = remove_dc(x + 0.25, sr)
    mid = slice(sr // 2, -sr // 2)
    assert abs(float(y[mid].mean())) < 1e-3
    assert np.max(np.abs(y[mid] - x[mid])) < 0.3 * 0.05  # < 0.4 dB at 110 Hz


def test_fit_length():
    assert fit_length(np.ones(5), 3).shape == (3,)
    np.testing.assert_array_equal(fit_length(np.ones(2), 4), [1, 1, 0, 0])


def test_atomic_write_roundtrip_and_no_partial_left(tmp_path: Path):
    x = tone(44100, 0.2)
    out = write_audio_atomic(tmp_path / "sub" / "o.flac", x, 44100, fmt="flac")
    y, sr = soundfile.read(out, dtype="float32")
    assert sr == 44100 and len(y) == len(x)
    assert np.max(np.abs(y - x)) < 1e-4
    bad = x.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        write_audio_atomic(tmp_path / "n.wav", bad, 44100)
    with pytest.raises(ValueError, match="unsupported output format"):
        write_audio_atomic(tmp_path / "x.mp3", x, 44100, fmt="mp3")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["o.flac", "sub"]


def test_atomic_output_gives_the_usual_file_mode_and_leaves_nothing_on_error(tmp_path):
    import os

    from svc_runtime.atomic import atomic_output

    target = tmp_path / "out.bin"
    with atomic_output(target) as handle:
        handle.write(b"done")
    umask = os.umask(0)
    os.umask(umask)
    assert target.read_bytes() == b"done"
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(RuntimeError):
        with atomic_output(target) as handle:
            handle.write(b"partial")
            raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"done"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
