"""`svc-train resample`: formats, channels and rates in; trimmed, loudness-matched 44.1 kHz 16-bit wav out."""

import numpy as np
import pyloudnorm
import soundfile
from typer.testing import CliRunner

from svc_train.cli import app
from svc_train.data.resample import ResampleSettings, prepare_samples


def _voice(sr: int, seconds: float, amp: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    x = amp * (np.sin(2 * np.pi * 180 * t) + 0.4 * np.sin(2 * np.pi * 360 * t)) + 0.01 * amp * rng.standard_normal(t.size)
    return x.astype(np.float32)


def _with_silence(x: np.ndarray, sr: int, lead: float, tail: float) -> np.ndarray:
    return np.concatenate([np.zeros(int(lead * sr), np.float32), x, np.zeros(int(tail * sr), np.float32)])


def test_prepare_samples_trims_resamples_and_matches_loudness():
    sr = 22050
    x = _with_silence(_voice(sr, 2.0, 0.05), sr, lead=0.5, tail=0.7)
    out, measured, notes = prepare_samples(x, sr, ResampleSettings(sampling_rate=44100, target_lufs=-23.0))
    assert measured is not None and measured < -28  # the input was quiet (about -29.5 LUFS)
    # Trimmed to the 2 s tone, give or take librosa's 2048-sample analysis frame at the input rate.
    assert 2.0 <= out.size / 44100 < 2.0 + 2048 / sr
    assert abs(pyloudnorm.Meter(44100).integrated_loudness(out.astype(np.float64)) - (-23.0)) < 0.1
    assert np.max(np.abs(out)) <= 10 ** (-1 / 20) + 1e-6


def test_loud_peak_is_limited_and_reported():
    sr = 44100
    x = _voice(sr, 1.0, 0.9)
    x[1000] = 4.0  # one over-full-scale spike: loudness gain would clip it
    out, _, notes = prepare_samples(x, sr, ResampleSettings(target_lufs=-10.0))
    assert np.max(np.abs(out)) <= 10 ** (-1 / 20) + 1e-6
    assert any("peak limited" in n for n in notes)


def test_skip_loudnorm_keeps_level():
    sr = 44100
    x = _voice(sr, 1.0, 0.2)
    out, measured, _ = prepare_samples(x, sr, ResampleSettings(skip_loudnorm=True))
    assert measured is None
    np.testing.assert_allclose(np.max(np.abs(out)), np.max(np.abs(x)), rtol=0.02)


def test_resample_cli_formats_channels_rates_and_bad_files(tmp_path):
    src = tmp_path / "raw"
    (src / "alice").mkdir(parents=True)
    (src / "bob").mkdir()
    stereo = np.stack([_voice(48000, 1.5, 0.3, 1), _voice(48000, 1.5, 0.2, 2)], axis=1)
    soundfile.write(src / "alice" / "a.flac", _with_silence(stereo[:, 0], 48000, 0.3, 0.3), 48000)
    soundfile.write(src / "alice" / "b.wav", np.pad(stereo, ((4800, 4800), (0, 0))), 48000, subtype="PCM_24")
    soundfile.write(src / "bob" / "c.ogg", _voice(22050, 1.2, 0.1, 3), 22050)
    soundfile.write(src / "bob" / "d.wav", _voice(16000, 1.0, 0.5, 4) * 3.0, 16000, subtype="FLOAT")
    soundfile.write(src / "bob" / "silent.wav", np.zeros(16000, np.float32), 16000)
    (src / "bob" / "text.wav").write_text("this is not audio")
    (src / "bob" / "empty.wav").write_bytes(b"")
    out = tmp_path / "dataset"
    result = CliRunner().invoke(app, ["resample", str(src), str(out), "-j", "2"])
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav"))
    assert written == ["alice/a.wav", "alice/b.wav", "bob/c.wav", "bob/d.wav"]
    meter = pyloudnorm.Meter(44100)
    for path in out.rglob("*.wav"):
        info = soundfile.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (44100, 1, "PCM_16")
        y, _ = soundfile.read(path, dtype="float64")
        assert abs(meter.integrated_loudness(y) - (-23.0)) < 0.3, path
    a = soundfile.info(out / "alice" / "a.wav")
    assert abs(a.frames / 44100 - 1.5) < 0.05  # 0.3 s of silence trimmed at both ends
    output = result.output.replace("\n", "")
    for name, reason in (("silent.wav", "digital silence"), ("text.wav", "not a readable"), ("empty.wav", "empty")):
        assert name in output and reason in output, (name, output)
    assert "4 of 7 files" in output


def test_dc_offset_is_removed_before_levels_are_set():
    sr = 44100
    x = _voice(sr, 1.5, 0.2) + 0.3
    out, _, notes = prepare_samples(x, sr, ResampleSettings())
    assert any("DC offset +0.300 removed" in n for n in notes)
    assert abs(float(np.mean(out))) < 1e-3
    assert abs(pyloudnorm.Meter(sr).integrated_loudness(out.astype(np.float64)) - (-23.0)) < 0.2
