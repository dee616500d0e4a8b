"""Pipeline parts without a bundle: speaker-mix files, the counter-based noise, retrieval and cluster blending."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from svc_runtime.pipeline.noise import NoiseStream, gaussians, normal_table, normals, splitmix64, stream_key
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


def test_noise_is_a_function_of_the_position():
    stream = NoiseStream(seed=5, stream=0, inter_channels=4, hop=8, harmonics=3)
    whole_prior, whole_sine = stream.prior(0, 100), stream.sine(0, 100)
    other = NoiseStream(5, 0, 4, 8, 3)
    np.testing.assert_array_equal(other.prior(37, 81), whole_prior[:, 37:81])
    np.testing.assert_array_equal(other.sine(15, 33), whole_sine[15 * 8 : 33 * 8])
    assert whole_prior.dtype == np.float32 and abs(float(whole_sine.std()) - 1.0) < 0.05
    assert abs(float(whole_sine.mean())) < 0.05
    phase = stream.initial_phase()
    assert phase.dtype == np.int32 and phase.shape == (3, 3) and np.all(phase[:, 0] == 0)
    assert np.all((phase >= 0) & (phase < 1 << 14)) and np.all(phase[2] < 1 << 12)
    assert not np.array_equal(NoiseStream(6, 0, 4, 8, 3).prior(0, 10), NoiseStream(5, 0, 4, 8, 3).prior(0, 10))
    assert not np.array_equal(NoiseStream(5, 1, 4, 8, 3).prior(0, 10), NoiseStream(5, 0, 4, 8, 3).prior(0, 10))


def test_noise_follows_its_published_definition():
    """docs/bundle.md defines the generator so that other hosts draw the same numbers: check it here
    against splitmix64's known first outputs and a direct transcription of the formula."""
    assert int(splitmix64(np.array([0], np.uint64))[0]) == 0xE220A8397B1DCDAF  # splitmix64 seeded 0
    assert int(splitmix64(np.array([0x9E3779B97F4A7C15], np.uint64))[0]) == 0x6E789E6AA1B965F4  # its second

    def mix(x: int) -> int:
        z = (x + 0x9E3779B97F4A7C15) % 2**64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
        return z ^ (z >> 31)

    def gauss(key: int, j: int) -> np.float32:
        p = (j % 2**64) >> 1
        u1 = ((mix((key + 2 * p) % 2**64) >> 11) + 1) * 2.0**-53
        u2 = (mix((key + 2 * p + 1) % 2**64) >> 11) * 2.0**-53
        r = np.sqrt(-2.0 * np.log(u1))
        return np.float32(r * (np.cos(2 * np.pi * u2) if j % 2 == 0 else np.sin(2 * np.pi * u2)))

    table_key = mix(mix(mix(0) ^ 0) ^ 3)
    assert stream_key(0, 0, 3) == table_key
    table = normal_table()
    assert table.shape == (1 << 20,) and abs(float(table.std()) - 1.0) < 2e-3 and abs(float(table.mean())) < 2e-3
    for j in (0, 1, 2, 12345, (1 << 20) - 1):
        assert table[j] == gauss(table_key, j)
    np.testing.assert_array_equal(gaussians(table_key, 7, 5), table[7:12])
    key = mix(mix(mix(52468) ^ 3) ^ 2)
    assert stream_key(52468, 3, 2) == key
    expected = [table[((mix((key + ((i % 2**64) >> 12 if i >= 0 else (i >> 12) % 2**64)) % 2**64) >> 44) + (i & 4095)) % 2**20]
                for i in range(-4100, 4200, 7)]
    np.testing.assert_array_equal(normals(key, -4100, 8300)[::7], np.array(expected, np.float32))


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
