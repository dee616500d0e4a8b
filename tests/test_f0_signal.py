"""f0 helpers against so-vits-svc 4.1 reference values (tests/fixtures/f0/reference.npz)."""

import numpy as np
import pytest

from svc_runtime.signal.f0 import (
    NoVoiceError,
    f0_at_times,
    f0_to_coarse,
    interpolate_unvoiced,
    nearest_indices,
    require_voiced,
    resize_f0,
    shift_f0,
    voiced_mask,
)


@pytest.fixture(scope="module")
def ref(fixtures_dir):
    return np.load(fixtures_dir / "f0" / "reference.npz")


def test_coarse_matches_reference_model_input(ref):
    got = f0_to_coarse(ref["f0"])
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, ref["f0_coarse"])


def test_coarse_matches_reference_edge_probe(ref):
    # negatives, 0, <=50 Hz -> 1; ~1103.1 Hz is the last 255, above it the reference gives 0
    np.testing.assert_array_equal(f0_to_coarse(ref["f0_probe"]), ref["f0_probe_coarse"])


def test_coarse_edges_and_shapes():
    f0 = np.array([[0.0, -5.0, 50.0, 1100.0, 1103.1, 1103.2, 5000.0, np.nan, -700.0, -1e4]], np.float32)
    np.testing.assert_array_equal(f0_to_coarse(f0), [[1, 1, 1, 255, 255, 0, 0, 1, 1, 1]])
    # float64 input is treated as the float32 tensor the model sees
    np.testing.assert_array_equal(f0_to_coarse(f0.astype(np.float64)), f0_to_coarse(f0))
    # monotone over the valid range
    sweep = f0_to_coarse(np.linspace(50, 1100, 5000))
    assert sweep[0] == 1 and sweep[-1] == 255 and np.all(np.diff(sweep) >= 0)


def test_interpolate_unvoiced_matches_rmvpe_post_processing(ref):
    # the RMVPE predictor: decoded f0 [231] -> nearest resize to len(audio)//160 = 230 -> fill gaps
    resized = resize_f0(ref["rmvpe_f0"], 230, mode="nearest")
    f0, uv = interpolate_unvoiced(resized)
    np.testing.assert_array_equal(uv, ref["rmvpe_uv_post"])
    np.testing.assert_allclose(f0, ref["rmvpe_f0_post"], rtol=1e-6)


def test_interpolate_unvoiced_cases():
    f0, uv = interpolate_unvoiced(np.array([0, 100, 0, 0, 200, 0], np.float32))
    np.testing.assert_allclose(f0, [100, 100, 100 + 100 / 3, 100 + 200 / 3, 200, 200], rtol=1e-6)
    np.testing.assert_array_equal(uv, [0, 1, 0, 0, 1, 0])
    assert f0.dtype == np.float32 and uv.dtype == np.float32
    f0, uv = interpolate_unvoiced(np.zeros(4))
    assert not f0.any() and not uv.any()
    f0, _ = interpolate_unvoiced(np.array([0.0, 0.0, 150.0, 0.0]))
    np.testing.assert_array_equal(f0, [150.0] * 4)
    with pytest.raises(ValueError, match="1-D"):
        interpolate_unvoiced(np.zeros((2, 3)))


@pytest.mark.parametrize("n_in, n_out", [(231, 230), (100, 37), (37, 100), (50, 100), (441, 512), (7, 7)])
def test_nearest_indices_follow_torch_rule(n_in, n_out):
    # torch CPU nearest: floor(i * float32(n_in / n_out)), clamped; spot values computed by hand
    idx = nearest_indices(n_in, n_out)
    assert idx.shape == (n_out,) and idx[0] == 0 and idx.max() <= n_in - 1
    assert np.all(np.diff(idx) >= 0)
    expected = np.minimum(np.floor(np.arange(n_out) * (n_in / n_out) + 1e-9).astype(int), n_in - 1)
    assert np.count_nonzero(idx != expected) <= 1  # float32 rounding may move at most a boundary frame


def test_nearest_indices_known_values():
    np.testing.assert_array_equal(nearest_indices(4, 8), [0, 0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(nearest_indices(5, 3), [0, 1, 3])
    np.testing.assert_array_equal(nearest_indices(3, 5), [0, 0, 1, 1, 2])


def test_resize_linear_zeroes_frames_next_to_unvoiced():
    f0 = np.array([100.0, 110.0, 0.0, 130.0, 140.0])
    # the pyworld predictors' resize: 5 -> 10 frames at positions i/2
    out = resize_f0(f0, 10, mode="linear")
    np.testing.assert_allclose(out, [100, 105, 110, 0, 0, 0, 130, 135, 140, 140])
    with pytest.raises(ValueError, match="mode"):
        resize_f0(f0, 3, mode="cubic")


def test_f0_at_times_is_voicing_aware():
    f0 = np.array([100.0, 200.0, 0.0, 400.0])
    t = np.array([0.0, 0.01, 0.02, 0.03])
    out = f0_at_times(f0, t, np.array([-0.001, 0.0, 0.005, 0.015, 0.03, 0.031]), mode="linear")
    np.testing.assert_allclose(out, [0, 100, 150, 0, 400, 0])
    # nearest: closest frame (ties to the earlier), 0 beyond half a period outside the span
    out = f0_at_times(f0, t, np.array([-0.006, -0.004, 0.004, 0.005, 0.016, 0.034, 0.036]))
    np.testing.assert_allclose(out, [0, 100, 100, 100, 0, 400, 0])
    with pytest.raises(ValueError, match="mode"):
        f0_at_times(f0, t, t, mode="cubic")


def test_shift():
    f0 = np.array([0.0, 220.0], np.float32)
    up = shift_f0(f0, 12)
    assert up.dtype == np.float32
    np.testing.assert_array_equal(up, [0.0, 440.0])
    np.testing.assert_allclose(shift_f0(np.array([440.0]), -7), [440.0 * 2 ** (-7 / 12)])
    np.testing.assert_array_equal(voiced_mask(np.array([0.0, -1.0, 3.0])), [0, 0, 1])


def test_require_voiced():
    require_voiced(np.array([0.0, 120.0]))
    with pytest.raises(NoVoiceError, match="no voiced frame found in song.wav"):
        require_voiced(np.zeros(10), "song.wav")
