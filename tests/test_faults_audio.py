"""Header bombs and limits: an input whose header claims an absurd sample rate, channel count or
duration is refused from the header, instantly, before any sample is decoded or resampled."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from svc_runtime.audio.decode import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, AudioInputError, decode_audio
from svc_runtime.errors import InputAudioError


def wav_claiming_rate(path: Path, rate: int, seconds: float = 2.3) -> Path:
    """A 16-bit mono WAV of `seconds` at 44.1 kHz whose header then says `rate` Hz (~200 KB at 2.3 s)."""
    audio = (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(44100 * seconds)) / 44100)).astype(np.float32)
    soundfile.write(path, audio, 44100, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[24:28] = rate.to_bytes(4, "little")
    data[28:32] = (rate * 2).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("rate", [1, 100, 7999, 400_000])
def test_sample_rate_outside_the_range_is_refused_from_the_header(tmp_path: Path, rate):
    path = wav_claiming_rate(tmp_path / f"r{rate}.wav", rate)
    t0 = time.perf_counter()
    with pytest.raises(AudioInputError, match=rf"sample rate {rate} Hz in the header is outside "
                                              rf"{MIN_SAMPLE_RATE}\.\.{MAX_SAMPLE_RATE} Hz"):
        decode_audio(path)
    assert time.perf_counter() - t0 < 0.5


def test_limits_are_inclusive(tmp_path: Path):
    for rate in (MIN_SAMPLE_RATE, MAX_SAMPLE_RATE):
        decoded = decode_audio(wav_claiming_rate(tmp_path / f"ok{rate}.wav", rate, seconds=2.3))
        assert decoded.sample_rate == rate


def test_duration_limit_from_the_header(tmp_path: Path):
    path = wav_claiming_rate(tmp_path / "long.wav", 8000, seconds=2.3)  # 101429 frames at 8 kHz: 12.7 s
    with pytest.raises(AudioInputError, match=r"too long: the header declares 0\.2 min, the limit is 0\.1 min"):
        decode_audio(path, max_duration_s=6.0)
    assert decode_audio(path, max_duration_s=13.0).samples.shape == (int(44100 * 2.3),)


def test_input_audio_error_is_the_one_taxonomy_class():
    assert AudioInputError is InputAudioError
    error = AudioInputError("x.wav", "file is empty")
    assert str(error) == "x.wav: file is empty" and error.reason == "file is empty" and isinstance(error, ValueError)
