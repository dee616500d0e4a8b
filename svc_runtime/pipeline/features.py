"""Per-window features on the generator's frame grid: raw F0 (pitch graph or classic method) and units.

A window is frames [a, b) of a padded segment at the model rate; its features are
computed from that window's audio only, so that chunked and streamed conversion can
compute them with limited context.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from svc_runtime.audio.resample import resample
from svc_runtime.signal.f0 import nearest_indices, resize_f0

ENCODER_RATE = 16000
NEURAL_PITCH = ("rmvpe", "fcpe")


class F0Source(Protocol):
    """Raw F0 of audio at the model rate: (audio [N], n_frames) -> f0 [n_frames] Hz, 0 = unvoiced."""

    name: str

    def __call__(self, audio: np.ndarray, audio16k: np.ndarray, n_frames: int) -> np.ndarray: ...


class GraphF0:
    """F0 from the bundle's pitch graph (RMVPE / FCPE salience decoded in numpy)."""

    def __init__(self, bundle) -> None:
        from svc_runtime.pitch import decode

        info = bundle.manifest.pitch
        if info is None or not bundle.has_graph("pitch"):
            raise ValueError(f"{bundle.path}: the bundle has no pitch graph; choose a classic --f0-method")
        self.bundle = bundle
        self.info = info
        self.name = info.method
        method = info.method.lower()
        if method.startswith("rmvpe"):
            self._decode = lambda s: decode.decode_rmvpe(s, threshold=info.threshold)
        elif method.startswith("fcpe"):
            self._decode = lambda s: decode.decode_fcpe(
                s, threshold=info.threshold, post_range=(info.f0_min, info.f0_max)
            )
        else:
            raise ValueError(f"{bundle.path}: no salience decoder for pitch method {info.method!r}")

    def __call__(self, audio: np.ndarray, audio16k: np.ndarray, n_frames: int) -> np.ndarray:
        sr = self.info.sampling_rate
        wav = audio16k if sr == ENCODER_RATE else resample(audio, self.bundle.sampling_rate, sr)
        salience = self.bundle.pitch_salience(wav)
        f0 = self._decode(salience)[0]
        if f0.size == 0:
            return np.zeros(n_frames, np.float32)
        return resize_f0(f0.astype(np.float32), n_frames, "nearest")


class ClassicF0:
    """F0 from a classic method (pm, harvest, dio) of `svc_runtime.pitch.extract` on the model's frame grid."""

    def __init__(self, method: str, sample_rate: int, hop: int) -> None:
        from svc_runtime.pitch.extract import FrameGrid, PitchOptions, extract_f0

        self._extract = extract_f0
        self._options = PitchOptions(method=method)
        self._grid = FrameGrid(sample_rate, hop)
        self.name = method
        self.sample_rate = sample_rate

    def __call__(self, audio: np.ndarray, audio16k: np.ndarray, n_frames: int) -> np.ndarray:
        track = self._extract(audio, self.sample_rate, self._options, grid=self._grid, n_frames=n_frames)
        return track.f0_hz


def make_f0_source(bundle, method: str | None) -> F0Source:
    """The bundle's own pitch graph when `method` is None (or names it), else a classic method."""
    if method is None or (bundle.manifest.pitch is not None and method == bundle.manifest.pitch.method):
        if bundle.has_graph("pitch"):
            return GraphF0(bundle)
        if method is None:
            method = "pm"
    if method.lower() in NEURAL_PITCH:
        raise ValueError(
            f"F0 method {method!r} needs a pitch graph in the bundle; re-export with it or choose pm/harvest/dio"
        )
    return ClassicF0(method, bundle.sampling_rate, bundle.hop_length)


def align_units(units: np.ndarray, n_frames: int, mode: str = "nearest") -> np.ndarray:
    """Stretch units [dim, Tu] to [dim, n_frames] as so-vits-svc's `repeat_expand_2d`."""
    try:
        from svc_runtime.signal import units as unit_helpers
    except ImportError:
        unit_helpers = None
    if unit_helpers is not None and hasattr(unit_helpers, "align_units"):
        return unit_helpers.align_units(units, n_frames, mode)
    if mode != "nearest":
        raise ValueError(f"unit interpolation {mode!r} needs svc_runtime.signal.units")
    return units[:, nearest_indices(units.shape[1], n_frames)]
