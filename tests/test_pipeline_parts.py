"""Pipeline parts without a bundle: speaker-mix files, the noise field, retrieval and cluster blending, F0 hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from svc_runtime.pipeline.features import causal_f0, hold_unvoiced, time_unit_indices, units_on_encoder_grid
from svc_runtime.pipeline.noise import NoiseField
from svc_runtime.pipeline.retrieval import ClusterCentres, FeatureIndex, RetrievalError, blend
from svc_runtime.pipeline.spkmix import SpeakerMixError, load_speaker_mix, parse_speaker_mix

SPEAKERS = {"alice": 0, "bob": 1, "carol": 2}


def test_spkmix_py_file_is_parsed_without_executing_it(tmp_path: Path):
    p = tmp_path / "spkmix.py"
    p.write_text(
        "import os  # never executed\n"
        "spk_mix_map = {\n"
        "    0: [[0., 0.5, 1, 0.5], [0.5, 1, 0.5, 1]],\n"
        "    'bob': [[0., 0.35, 1, 0.5], [0.35, 0.75, 0.75, 1], [0.75, 1, 0.45, 1]],\n"
        "}\n"
    )
    mix = load_speaker_mix(p, SPEAKERS)
    w = mix.weights(1000, 3)
    assert w.shape == (1000, 3) and np.allclose(w.sum(1), 1.0, atol=1e-6)
    assert np.all(w[:, 2] == 0)
    # At t = 0.25 alice goes 1 -> 0.5 (0.75), bob 1 -> 0.5 over [0, 0.35] (~0.643); normalised.
    t = 0.25
    a, b = 1 - 0.5 * t / 0.5, 1 - 0.5 * t / 0.35
    np.testing.assert_allclose(mix.weights_at(np.array([t]), 3)[0], [a / (a + b), b / (a + b), 0], atol=1e-6)


def test_spkmix_json_and_errors(tmp_path: Path):
    p = tmp_path / "mix.json"
    p.write_text('{"1": [[0, 1, 1, 1]]}')
    assert np.all(load_speaker_mix(p, SPEAKERS).weights(5, 3)[:, 1] == 1.0)
    cases = [
        ({"dave": [[0, 1, 1, 1]]}, "not in the model"),
        ({0: [[0.1, 1, 1, 1]]}, "must start at 0.0"),
        ({0: [[0, 0.5, 1, 1]]}, "must end at 1"),
        ({0: [[0, 0.5, 1, 1], [0.6, 1, 1, 1]]}, "must start at 0.5"),
        ({0: [[0, 1, -1, 1]]}, "weights must be >= 0"),
        ({0: [[0, 1, 1]]}, "expected 4 numbers"),
    ]
    for mapping, message in cases:
        with pytest.raises(SpeakerMixError, match=message):
            parse_speaker_mix(mapping, SPEAKERS)
    with pytest.raises(SpeakerMixError, match="all weights 0"):
        parse_speaker_mix({0: [[0, 1, 0, 0]]}, SPEAKERS).weights(10, 3)
    p.write_text("spk_mix_map = make_mix()\n")
    with pytest.raises(SpeakerMixError, match="plain literal"):
        load_speaker_mix(p, SPEAKERS)


def test_noise_field_is_a_function_of_the_frame():
    field = NoiseField(seed=5, inter_channels=4, hop=8, harmonics=3, block_frames=16)
    whole_prior, whole_sine = field.prior(0, 100), field.sine(0, 100)
    other = NoiseField(seed=5, inter_channels=4, hop=8, harmonics=3, block_frames=16)
    np.testing.assert_array_equal(other.prior(37, 81), whole_prior[:, 37:81])
    np.testing.assert_array_equal(other.sine(15, 33), whole_sine[15 * 8 : 33 * 8])
    assert whole_prior.dtype == np.float32 and abs(float(whole_sine.std()) - 1.0) < 0.05
    ini = field.rand_ini()
    assert ini[0] == 0 and np.all((ini >= 0) & (ini < 1))
    assert not np.array_equal(NoiseField(6, 4, 8, 3).prior(0, 10), NoiseField(5, 4, 8, 3).prior(0, 10))
    assert not np.array_equal(NoiseField(5, 4, 8, 3, stream=1).prior(0, 10), NoiseField(5, 4, 8, 3).prior(0, 10))


def test_feature_retrieval_matches_brute_force(tmp_path: Path):
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    bank = rng.standard_normal((500, 16)).astype(np.float32)
    index = faiss.IndexFlatL2(16)
    index.add(bank)
    path = tmp_path / "alice.index"
    faiss.write_index(index, str(path))
    c = rng.standard_normal((16, 40)).astype(np.float32)
    ours = FeatureIndex(path, 16).retrieve(c)
    d = ((c.T[:, None, :] - bank[None]) ** 2).sum(-1)
    top = np.argsort(d, axis=1)[:, :8]
    w = 1.0 / np.take_along_axis(d, top, 1) ** 2
    w /= w.sum(1, keepdims=True)
    ref = np.einsum("tk,tkd->dt", w, bank[top])
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(blend(c, ours, 0.0), c)
    np.testing.assert_allclose(blend(c, ours, 1.0), ours, atol=1e-6)
    with pytest.raises(RetrievalError, match="holds 16-dim features, the model uses 32"):
        FeatureIndex(path, 32)
    (tmp_path / "junk.index").write_bytes(b"junk")
    with pytest.raises(RetrievalError, match="not a readable faiss index"):
        FeatureIndex(tmp_path / "junk.index", 16)


def test_cluster_centres_pick_the_nearest(tmp_path: Path):
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((10, 8)).astype(np.float32)
    np.savez(tmp_path / "kmeans.npz", centers=centres)
    c = rng.standard_normal((8, 30)).astype(np.float32)
    ours = ClusterCentres(tmp_path / "kmeans.npz", 8).nearest(c)
    nearest = np.argmin(((c.T[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(ours, centres[nearest].T)
    with pytest.raises(RetrievalError, match=r"centres must be \[K, 4\]"):
        ClusterCentres(tmp_path / "kmeans.npz", 4)


def test_hold_unvoiced_is_causal():
    f0 = np.array([0, 0, 100, 0, 0, 120, 0], np.float32)
    filled, uv = hold_unvoiced(f0)
    np.testing.assert_array_equal(filled, [0, 0, 100, 100, 100, 120, 120])
    np.testing.assert_array_equal(uv, [0, 0, 1, 0, 0, 1, 0])
    # A stream continues from its last voiced value, and a prefix never depends on the future.
    head, _ = hold_unvoiced(f0[:4])
    tail, _ = hold_unvoiced(f0[4:], last_voiced=float(head[-1]))
    np.testing.assert_array_equal(np.concatenate([head, tail]), filled)


def test_causal_f0_is_one_frame_late_and_streams():
    raw = np.array([0, 100, 0, 0, 120, 0, 0], np.float32)
    f0, uv = causal_f0(raw)
    np.testing.assert_array_equal(f0, [0, 0, 100, 100, 100, 120, 120])
    np.testing.assert_array_equal(uv, [0, 0, 1, 0, 0, 1, 0])
    head, _ = causal_f0(raw[:3])
    tail, _ = causal_f0(raw[3:], previous_raw=float(raw[2]), last_voiced=float(head[-1]))
    np.testing.assert_array_equal(np.concatenate([head, tail]), f0)


def test_time_unit_indices_lag_one_encoder_frame():
    idx = time_unit_indices(0, 200, 44100, 512, 16000, 320)
    t_model = np.arange(200) * 512 / 44100
    assert np.all(idx == np.maximum(np.floor(t_model / 0.02 + 1e-9).astype(int) - 1, 0))
    np.testing.assert_array_equal(time_unit_indices(50, 10, 44100, 512, 16000, 320), idx[50:60])


class ConvEncoder:
    """A local encoder (400-sample frames, hop 320) standing in for a bundle."""

    class manifest:
        class speech_encoder:
            sampling_rate = 16000
            hop_length = 320

    def encode_units(self, wav):
        n = (len(wav) - 400) // 320 + 1
        idx = np.arange(n)[:, None] * 320 + np.arange(400)
        frames = wav[idx]
        return np.stack([frames.mean(1), frames.std(1), frames[:, :7].sum(1)])[None].astype(np.float32)


def test_units_on_encoder_grid_equal_whole_for_a_local_encoder():
    wav = np.random.default_rng(2).standard_normal(16000 * 7 + 123).astype(np.float32)
    enc = ConvEncoder()
    whole = enc.encode_units(wav)[0]
    for window, context in ((1.0, 0.1), (2.0, 0.5), (0.5, 0.2)):
        np.testing.assert_allclose(units_on_encoder_grid(enc, wav, window, context), whole, atol=1e-6)
