"""The pipeline's graph F0 (`GraphF0`) decodes each pitch network as the manifest's pitch section says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from svc_runtime.bundle.manifest import PitchInfo
from svc_runtime.pipeline.features import GraphF0
from svc_runtime.pitch.decode import FCPE_F0_RANGE, cents_to_hz, fcpe_bin_cents

SR, HOP = 16000, 160


class SalienceBundle:
    """What `GraphF0` reads of a bundle: the pitch section and a pitch graph returning fixed salience."""

    def __init__(self, info: PitchInfo, salience: np.ndarray) -> None:
        self.path = Path("fake-bundle")
        self.manifest = type("M", (), {"pitch": info})()
        self.sampling_rate = SR
        self.hop_length = HOP
        self.salience = salience
        self.calls: list[int] = []

    def has_graph(self, role: str) -> bool:
        return role == "pitch"

    def pitch_salience(self, wav: np.ndarray) -> np.ndarray:
        wav = np.atleast_2d(wav)
        self.calls.append(wav.shape[-1])
        frames = wav.shape[-1] // HOP + 1
        return np.repeat(self.salience[None, :1], frames, axis=1)


def fcpe_info(**bins) -> PitchInfo:
    return PitchInfo(method="fcpe", sampling_rate=SR, hop_length=HOP, threshold=0.05, f0_min=50.0, f0_max=1100.0,
                     graph="pitch", decoder="local_argmax", **bins)


def one_peak(bin_index: int, n_bins: int = 360) -> np.ndarray:
    salience = np.zeros((1, n_bins), np.float32)
    salience[0, bin_index] = 0.9
    return salience


def test_fcpe_decodes_on_the_bin_range_of_the_manifest():
    """Custom FCPE weights whose bins span 60..1200 Hz: a peak at bin 180 is that range's bin 180."""
    salience = one_peak(180)
    custom = GraphF0(SalienceBundle(fcpe_info(bins_f0_min=60.0, bins_f0_max=1200.0), salience))
    f0 = custom(np.zeros(1600, np.float32), 10)
    want = cents_to_hz(fcpe_bin_cents(360, (60.0, 1200.0))[180])
    default_bin = cents_to_hz(fcpe_bin_cents(360, FCPE_F0_RANGE)[180])
    assert f0.shape == (10,)
    assert np.max(np.abs(f0 - want)) < 1e-3 * want
    assert abs(1200 * np.log2(want / default_bin)) > 50  # the ranges differ by far more than the tolerance
    # No bins range in the manifest (older bundles): torchfcpe's own range.
    plain = GraphF0(SalienceBundle(fcpe_info(), salience))(np.zeros(1600, np.float32), 10)
    assert np.max(np.abs(plain - default_bin)) < 1e-3 * default_bin


def test_fcpe_keeps_the_post_filter_range():
    """f0_min/f0_max stay the Hz kept after decoding: a peak below 50 Hz is unvoiced, above 1100 clamped."""
    info = fcpe_info(bins_f0_min=20.0, bins_f0_max=2000.0)
    low = GraphF0(SalienceBundle(info, one_peak(5)))(np.zeros(1600, np.float32), 4)
    high = GraphF0(SalienceBundle(info, one_peak(355)))(np.zeros(1600, np.float32), 4)
    assert np.all(low == 0.0)
    assert np.allclose(high, 1100.0)


def test_unknown_pitch_method_is_refused():
    info = PitchInfo(method="swipe", sampling_rate=SR, hop_length=HOP, threshold=0.05, f0_min=50.0, f0_max=1100.0)
    with pytest.raises(ValueError, match="no salience decoder for pitch method 'swipe'"):
        GraphF0(SalienceBundle(info, one_peak(10)))
