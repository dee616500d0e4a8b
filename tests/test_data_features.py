"""Feature extraction and its cache: contents, resumability, invalidation, bad clips excluded."""

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from svc_train.data.feature_jobs import drop_from_filelists, init_worker, process_clip
from svc_train.data.features import FeatureSettings, feature_path, load_features
from svc_train.mel import spectrogram_torch

ENCODER = Path(__file__).parent / "fixtures" / "contentvec_small" / "hf"
SR, HOP = 44100, 512


def _tone(path: Path, seconds: float = 1.0, f0: float = 220.0, sr: int = SR, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    noise = 1e-3 * np.random.default_rng(0).standard_normal(t.size)  # WORLD Harvest finds no F0 in a pure tone
    x = (amp * (np.sin(2 * np.pi * f0 * t) + 0.3 * np.sin(4 * np.pi * f0 * t)) + noise).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, x, sr, subtype="FLOAT")
    return x


def _settings(method: str = "dio") -> FeatureSettings:
    return FeatureSettings(SR, HOP, 2048, 2048, "vec768l12", str(ENCODER.resolve()), method)


@pytest.fixture(scope="module")
def worker():
    init_worker(_settings(), torch_threads=0)


def test_features_content_and_shapes(tmp_path, worker):
    wav = tmp_path / "spk" / "a.wav"
    x = _tone(wav)
    outcome = process_clip(wav)
    assert outcome.status == "computed", outcome.reason
    features, meta = load_features(wav)
    t = x.size // HOP
    assert features.units.shape[0] == 64 and abs(features.units.shape[1] - x.size / SR * 50) < 3
    assert features.f0.shape == features.uv.shape == features.volume.shape == (t,)
    voiced = features.uv > 0
    assert voiced.mean() > 0.8
    assert np.median(np.abs(1200 * np.log2(features.f0[voiced] / 220.0))) < 20  # cents
    assert np.all(features.f0 > 0)  # unvoiced frames interpolated
    np.testing.assert_allclose(np.median(features.volume), np.sqrt(np.mean(x**2)), rtol=0.05)
    spec = spectrogram_torch(torch.from_numpy(x)[None], 2048, SR, HOP, 2048)[0].numpy()
    np.testing.assert_allclose(features.spec, spec, rtol=1e-5, atol=1e-6)
    assert meta["f0_method"] == "dio" and meta["units_dim"] == 64
    with np.load(feature_path(wav), allow_pickle=False) as archive:  # no pickles inside
        assert sorted(archive.files) == ["f0", "meta", "spec", "units", "uv", "volume"]


def test_cache_is_reused_and_invalidated(tmp_path, worker):
    wav = tmp_path / "spk" / "b.wav"
    _tone(wav)
    assert process_clip(wav).status == "computed"
    assert process_clip(wav).status == "cached"
    _tone(wav, f0=330.0, seconds=1.2)  # the audio changed
    assert process_clip(wav).status == "computed"
    assert load_features(wav)[0].f0.shape == (int(1.2 * SR) // HOP,)
    feature_path(wav).write_bytes(b"garbage")  # a broken cache is recomputed, not trusted
    assert process_clip(wav).status == "computed"
    init_worker(_settings("harvest"), torch_threads=0)  # other settings: recomputed
    try:
        assert process_clip(wav).status == "computed"
    finally:
        init_worker(_settings(), torch_threads=0)


def test_bad_clips_are_excluded_with_reasons(tmp_path, worker):
    cases = {}
    silent = tmp_path / "spk" / "silent.wav"
    silent.parent.mkdir()
    soundfile.write(silent, np.zeros(SR, np.float32), SR)
    cases[silent] = "silent"
    wrong_rate = tmp_path / "spk" / "rate.wav"
    _tone(wrong_rate, sr=22050)
    cases[wrong_rate] = "22050 Hz"
    short = tmp_path / "spk" / "short.wav"
    _tone(short, seconds=0.02)
    cases[short] = "too short"
    broken = tmp_path / "spk" / "broken.wav"
    broken.write_text("not audio")
    cases[broken] = "unreadable"
    for wav, reason in cases.items():
        outcome = process_clip(wav)
        assert outcome.status == "excluded" and reason in outcome.reason, (wav.name, outcome)
        assert not feature_path(wav).exists()


def test_excluded_clips_are_dropped_from_the_lists(tmp_path):
    keep, bad = tmp_path / "a.wav", tmp_path / "b.wav"
    lists = [tmp_path / "train.txt", tmp_path / "val.txt"]
    lists[0].write_text(f"{keep}\n{bad}\n")
    lists[1].write_text(f"{keep}\n")
    removed = drop_from_filelists(lists, {bad: "silent (peak below -80 dBFS)"})
    assert removed == {lists[0]: 1, lists[1]: 0}
    assert lists[0].read_text() == f"{keep}\n"
    assert (tmp_path / "train.txt.excluded.tsv").read_text() == f"{bad}\tsilent (peak below -80 dBFS)\n"
