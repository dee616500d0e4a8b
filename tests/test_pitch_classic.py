"""Classic F0 trackers (Harvest, DIO, Praat AC) and the dispatcher, on synthetic tones of known F0."""

import sys

import numpy as np
import pytest

from svc_runtime.pitch import classic
from svc_runtime.pitch.classic import ClassicRange, dio, harvest, load_pyworld, pm
from svc_runtime.pitch.extract import FrameGrid, PitchOptions, extract_f0


def glide_tone(sr: int, seconds: float = 1.0, f_start: float = 150.0, f_end: float = 300.0, silence_s: float = 0.3):
    """Harmonic tone (8 partials, 1/k) gliding exponentially f_start -> f_end, then digital silence.

    Returns (audio [N] float32, f0_at(t) -> Hz or 0).
    """
    n_voiced = int(seconds * sr)
    t = np.arange(n_voiced) / sr
    rate = np.log(f_end / f_start) / seconds
    phase = 2 * np.pi * f_start * np.expm1(rate * t) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 9))
    ramp = np.minimum(1.0, np.minimum(t, seconds - t) / 0.01)
    audio = np.concatenate([0.25 * voiced * ramp, np.zeros(int(silence_s * sr))]).astype(np.float32)

    def f0_at(times: np.ndarray) -> np.ndarray:
        times = np.asarray(times, dtype=np.float64)
        inside = (times >= 0.03) & (times <= seconds - 0.03)
        return np.where(inside, f_start * np.exp(rate * np.clip(times, 0, seconds)), 0.0)

    return audio, f0_at


def cents_error(est: np.ndarray, ref: np.ndarray) -> np.ndarray:
    both = (est > 0) & (ref > 0)
    return np.abs(1200 * np.log2(est[both] / ref[both]))


@pytest.fixture(scope="module")
def tone16k():
    return glide_tone(16000)


def test_pyworld_loads_without_pkg_resources(monkeypatch):
    # pyworld 0.3.5's __init__ imports pkg_resources (gone in setuptools >= 81): the loader must
    # fall back to the compiled extension whatever setuptools is installed.
    for name in [m for m in sys.modules if m == "pyworld" or m.startswith("pyworld.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pkg_resources", None)
    module = load_pyworld.__wrapped__()
    assert callable(module.harvest) and callable(module.dio) and callable(module.stonemask)
    x = np.sin(2 * np.pi * 200 * np.arange(8000) / 16000)
    f0, t = module.dio(x, 16000)
    assert f0.shape == t.shape and f0.size > 0


@pytest.mark.parametrize("tracker, max_median_cents", [(harvest, 3.0), (dio, 5.0), (pm, 3.0)])
def test_tracker_follows_a_glide(tone16k, tracker, max_median_cents):
    audio, f0_at = tone16k
    times, f0 = tracker(audio, 16000)
    assert times.dtype == np.float64 and f0.dtype == np.float32 and times.shape == f0.shape
    truth = f0_at(times)
    errors = cents_error(f0, truth)
    assert np.median(errors) < max_median_cents
    assert np.mean(errors > 50) < 0.02
    assert np.mean(f0[truth > 0] > 0) > 0.95  # voiced where the tone is
    assert np.mean(f0[times > 1.05] > 0) < 0.05  # unvoiced in the digital silence


def test_harvest_frames_sit_on_the_requested_period(tone16k):
    audio, _ = tone16k
    times, f0 = harvest(audio, 16000, frame_period_s=512 / 44100)
    np.testing.assert_allclose(times, np.arange(times.size) * 512 / 44100, atol=1e-12)
    assert times.size == int(audio.size / 16000 / (512 / 44100)) + 1


def test_dio_rounds_to_a_tenth_of_a_hertz(tone16k):
    _, f0 = dio(tone16k[0], 16000)
    np.testing.assert_allclose(f0, np.round(f0.astype(np.float64), 1), atol=1e-4)


def test_pm_short_audio_gives_no_frames():
    times, f0 = pm(np.zeros(500, np.float32), 16000)  # 31 ms < 3 periods of 50 Hz
    assert times.size == f0.size == 0


def test_range_limits_the_search(tone16k):
    audio, _ = tone16k
    _, f0 = harvest(audio, 16000, pitch_range=ClassicRange(400.0, 1100.0))
    assert np.all((f0 == 0) | (f0 >= 390.0))  # the 150-300 Hz glide cannot be reported as such


@pytest.mark.parametrize("method", ["harvest", "dio", "pm"])
def test_dispatcher_places_frames_on_a_44k_grid_by_time(method):
    audio, f0_at = glide_tone(44100)
    grid = FrameGrid(44100, 512)
    track = extract_f0(audio, 44100, PitchOptions(method), grid)
    n = audio.size // 512
    assert track.f0_hz.shape == (n,) and track.f0_hz.dtype == np.float32
    np.testing.assert_allclose(track.times_s, np.arange(n) * 512 / 44100)
    errors = cents_error(track.f0_hz, f0_at(track.times_s))
    # the glide moves 1200 cents/s: one frame (11.6 ms) off costs about 14 cents
    assert np.median(errors) < 2.0
    # so-vits-svc's own placement (stretch by frame count; pm: centred padding) is measurably worse
    length = extract_f0(audio, 44100, PitchOptions(method, alignment="length"), grid)
    assert length.f0_hz.shape == (n,)
    assert np.median(cents_error(length.f0_hz, f0_at(track.times_s))) > np.median(errors)


def test_dispatcher_default_grid_is_10ms_with_n16k_over_160_plus_one(tone16k):
    audio, _ = tone16k
    track = extract_f0(audio, 16000, PitchOptions("harvest"))
    assert track.f0_hz.size == audio.size // 160 + 1
    assert track.grid == FrameGrid(16000, 160)
    # audio at another rate lands on the same grid
    audio22, _ = glide_tone(22050)
    assert extract_f0(audio22, 22050, PitchOptions("dio")).f0_hz.size == audio.size // 160 + 1


def test_options_are_validated(tmp_path):
    assert PitchOptions("crepe").effective_threshold == 0.05  # torchcrepe's network runs without torchaudio
    with pytest.raises(ValueError, match="unknown pitch method 'yin'"):
        PitchOptions("yin")
    with pytest.raises(ValueError, match="harvest has no voicing threshold"):
        PitchOptions("harvest", threshold=0.1)
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\)"):
        PitchOptions("rmvpe", threshold=1.5)
    with pytest.raises(ValueError, match="f0_min < f0_max"):
        PitchOptions("dio", f0_min=500, f0_max=100)
    with pytest.raises(ValueError, match="takes no checkpoint"):
        PitchOptions("pm", checkpoint=tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        PitchOptions("rmvpe", checkpoint=tmp_path / "missing.onnx")
    assert PitchOptions("pm").effective_threshold == classic.PM_VOICING_THRESHOLD
    assert PitchOptions("fcpe").effective_threshold == 0.05


def test_trackers_reject_bad_audio():
    with pytest.raises(ValueError, match="mono"):
        harvest(np.zeros((2, 1000), np.float32), 16000)
    with pytest.raises(ValueError, match="NaN"):
        dio(np.full(1000, np.nan, np.float32), 16000)
    with pytest.raises(ValueError, match="float audio"):
        pm(np.zeros(1000, np.int16), 16000)
    with pytest.raises(ValueError, match="unknown classic"):
        classic.classic_f0("yin", np.zeros(1000, np.float32), 16000)  # type: ignore[arg-type]
