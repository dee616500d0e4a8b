"""The host's F0 track for the `converter_f0` / `synthesis` graphs: raw F0 of a window on the frame grid.

The `converter` graph tracks pitch itself (RMVPE / FCPE inside the graph); the host computes F0 only
for classic methods (pm, harvest, dio), for CREPE (Viterbi decoding of the bundle's pitch graph), and
when it runs the graph halves (retrieval, diffusion). A window is frames [a, b) of a padded slice at
the model rate; its F0 comes from that window's audio only.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from svc_runtime.audio.resample import resample
from svc_runtime.pitch.methods import NEURAL_METHODS
from svc_runtime.signal.f0 import resize_f0


class F0Source(Protocol):
    """Raw F0 of audio at the model rate on its frame grid: (audio [N], n_frames) -> f0 [n_frames] Hz, 0 = unvoiced."""

    name: str

    def __call__(self, audio: np.ndarray, n_frames: int) -> np.ndarray: ...


class GraphF0:
    """F0 from the bundle's pitch graph (RMVPE / FCPE / CREPE salience decoded in numpy).

    CREPE runs in slices of `CREPE_FRAMES_PER_RUN` frames (`crepe_segments`: the same frames
    as one run) to bound its memory, and is decoded with its silence gate on the same audio.
    """

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
            self._decode = lambda s, wav: decode.decode_rmvpe(s, threshold=info.threshold)
        elif method.startswith("fcpe"):
            bins = (info.bins_f0_min, info.bins_f0_max)
            bins = decode.FCPE_F0_RANGE if None in bins else bins  # the Hz span of the salience bins
            self._decode = lambda s, wav: decode.decode_fcpe(
                s, decoder=info.decoder or "local_argmax", threshold=info.threshold, f0_range=bins,
                post_range=(info.f0_min, info.f0_max),
            )
        elif method.startswith("crepe"):
            self._decode = lambda s, wav: decode.decode_crepe(
                s[0], wav, info.decoder or "viterbi", info.threshold, (info.f0_min, info.f0_max)
            )[None]
        else:
            raise ValueError(f"{bundle.path}: no salience decoder for pitch method {info.method!r}")

    def __call__(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        wav = resample(audio, self.bundle.sampling_rate, self.info.sampling_rate)
        salience = self._salience(wav)
        f0 = self._decode(salience, wav)[0]
        if f0.size == 0:
            return np.zeros(n_frames, np.float32)
        return resize_f0(f0.astype(np.float32), n_frames, "nearest")


    def _salience(self, wav: np.ndarray) -> np.ndarray:
        """Salience [1, frames, bins] of 16 kHz audio [N] (frames = N // hop + 1)."""
        if not self.name.lower().startswith("crepe"):
            return self.bundle.pitch_salience(wav)
        from svc_runtime.pitch.extract import CREPE_FRAMES_PER_RUN, crepe_segments

        parts = [self.bundle.pitch_salience(segment)[:, keep] for segment, keep in crepe_segments(wav, CREPE_FRAMES_PER_RUN)]
        return np.concatenate(parts, axis=1)


class ClassicF0:
    """F0 from a classic method (pm, harvest, dio) of `svc_runtime.pitch.extract` on the model's frame grid."""

    def __init__(self, method: str, sample_rate: int, hop: int) -> None:
        from svc_runtime.pitch.extract import FrameGrid, PitchOptions, extract_f0

        self._extract = extract_f0
        self._options = PitchOptions(method=method)
        self._grid = FrameGrid(sample_rate, hop)
        self.name = method
        self.sample_rate = sample_rate

    def __call__(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        track = self._extract(audio, self.sample_rate, self._options, grid=self._grid, n_frames=n_frames)
        return track.f0_hz


def make_f0_source(bundle, method: str | None) -> F0Source:
    """The bundle's own pitch graph when `method` is None (or names it), else a classic method."""
    if method is None or (bundle.manifest.pitch is not None and method == bundle.manifest.pitch.method):
        if bundle.has_graph("pitch"):
            return GraphF0(bundle)
        if method is None:
            method = "pm"
    if method.lower() in NEURAL_METHODS:
        raise ValueError(
            f"F0 method {method!r} needs a pitch graph in the bundle; re-export with it or choose pm/harvest/dio"
        )
    return ClassicF0(method, bundle.sampling_rate, bundle.hop_length)
