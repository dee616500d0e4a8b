"""Volume envelope and loudness mixing against so-vits-svc 4.1 values (tests/fixtures/f0/reference.npz)."""

import numpy as np
import pytest

from svc_runtime.signal.volume import change_rms, rms_frames, volume_envelope


def swelling_tone(n: int, sr: int, seed_hz: float = 110.0) -> np.ndarray:
    """Deterministic float32 test audio: a swelling two-partial tone with a silent gap and a chirp."""
    t = np.arange(n) / sr
    tone = np.sin(2 * np.pi * seed_hz * t) + 0.4 * np.sin(2 * np.pi * 2.5 * seed_hz * t + 0.3)
    swell = 0.5 + 0.45 * np.sin(2 * np.pi * 1.7 * t)
    chirp = 0.1 * np.sin(2 * np.pi * (50 * t + 400 * t**2))
    y = 0.3 * tone * swell + chirp
    y[n // 3 : n // 3 + n // 10] = 0.0
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def ref(fixtures_dir):
    return np.load(fixtures_dir / "f0" / "reference.npz")


@pytest.mark.parametrize("hop, n", [(512, 3001), (160, 3001), (7, 100)])
def test_volume_matches_reference(ref, hop, n):
    audio = swelling_tone(3001, 16000)[:n]
    expected = ref[f"volume_hop{hop}"]
    got = volume_envelope(audio, hop)
    assert got.dtype == np.float32
    assert got.shape == (n // hop,) == expected.shape
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-9)


def test_volume_batch_and_known_values():
    hop = 4
    dc = np.full((2, 40), 0.5, dtype=np.float32)
    dc[1] *= 2
    vol = volume_envelope(dc, hop)
    assert vol.shape == (2, 10)
    np.testing.assert_allclose(vol, [[0.5] * 10, [1.0] * 10], rtol=1e-7)
    # frame i is centred on sample i*hop: an impulse at sample 8 lands in frame 2 only
    imp = np.zeros(40, dtype=np.float32)
    imp[8] = 2.0
    vol = volume_envelope(imp, hop)
    np.testing.assert_allclose(vol, np.where(np.arange(10) == 2, 1.0, 0.0), atol=1e-7)


def test_volume_rejects_bad_input():
    with pytest.raises(ValueError, match="too short"):
        volume_envelope(np.zeros(100, np.float32), 512)
    with pytest.raises(ValueError, match="hop"):
        volume_envelope(np.zeros(100, np.float32), 0)
    with pytest.raises(ValueError, match="shape"):
        volume_envelope(np.zeros((1, 2, 100), np.float32), 8)


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.75])
def test_change_rms_matches_reference(ref, rate):
    src = swelling_tone(2600, 2000)
    conv = swelling_tone(1950, 1500, seed_hz=173.0)
    got = change_rms(src, 2000, conv, 1500, rate)
    expected = ref[f"rms_rate{rate}"]
    assert got.shape == conv.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_change_rms_rate_one_is_identity_and_rate_zero_copies_loudness():
    sr = 8000
    conv = swelling_tone(4 * sr, sr)
    src = 3.0 * conv
    np.testing.assert_array_equal(change_rms(src, sr, conv, sr, 1.0), conv)
    out = change_rms(src, sr, conv, sr, 0.0)
    # same shape of envelope, three times louder: the output takes the source's loudness
    np.testing.assert_allclose(out, src, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="rate"):
        change_rms(src, sr, conv, sr, 1.5)


def test_rms_frames_counts_and_constant_padding():
    y = np.ones(1000, dtype=np.float32)
    assert rms_frames(y, 200, 100).shape == (11,)
    edge = rms_frames(y, 200, 100, pad_mode="constant")
    np.testing.assert_allclose(edge[[0, 5, 10]], [np.sqrt(0.5), 1.0, np.sqrt(0.5)], rtol=1e-6)
