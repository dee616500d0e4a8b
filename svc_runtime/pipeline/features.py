"""Per-window features on the generator's frame grid: raw F0 (pitch graph or classic method) and units.

A window is frames [a, b) of a padded segment at the model rate; its features are
computed from that window's audio only, so that chunked and streamed conversion can
compute them with limited context.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from svc_runtime.audio.resample import resample
from svc_runtime.signal import units as unit_helpers
from svc_runtime.signal.f0 import resize_f0
from svc_runtime.signal.slicer import plan_chunks

ENCODER_RATE = 16000
NEURAL_PITCH = ("rmvpe", "fcpe", "crepe")


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
    if method.lower() in NEURAL_PITCH:
        raise ValueError(
            f"F0 method {method!r} needs a pitch graph in the bundle; re-export with it or choose pm/harvest/dio"
        )
    return ClassicF0(method, bundle.sampling_rate, bundle.hop_length)


ENCODER_RECEPTIVE_MARGIN = 1
"""Extra encoder hops of audio given past a unit window's end, so its last kept frame is complete."""


def units_on_encoder_grid(bundle, audio16k: np.ndarray, window_s: float, context_s: float) -> np.ndarray:
    """Content units [dim, Tu] of 16 kHz audio, computed in windows aligned to the encoder's hop.

    Each window starts on a multiple of the encoder hop, so its frames are the whole-signal
    frames (same conv phase); a window's frames are kept on its own region, with
    `context_s` of audio on both sides for the encoder's attention. With one window this is
    exactly `bundle.encode_units(audio16k)`.
    """
    info = bundle.manifest.speech_encoder
    hop_e = info.hop_length
    n16 = audio16k.shape[0]
    n_est = max(1, n16 // hop_e)
    window = max(1, int(math.ceil(window_s * info.sampling_rate / hop_e)))
    context = int(math.ceil(context_s * info.sampling_rate / hop_e))
    if window <= 2 * context:
        window = 2 * context + 1
    units: np.ndarray | None = None
    total = 0
    for ch in plan_chunks(n_est, window, context):
        lo = ch.win_start * hop_e
        hi = min(n16, (ch.win_end + ENCODER_RECEPTIVE_MARGIN) * hop_e)
        out = bundle.encode_units(audio16k[lo:hi])[0]
        if units is None:
            units = np.zeros((out.shape[0], n_est + 2), np.float32)
        produced = ch.win_start + out.shape[1]
        ke = min(ch.keep_end, produced) if ch.keep_end < n_est else produced
        units[:, ch.keep_start : ke] = out[:, ch.keep_start - ch.win_start : ke - ch.win_start]
        total = ke
    assert units is not None
    return units[:, :total]


def hold_unvoiced(f0: np.ndarray, last_voiced: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Causal fill: each unvoiced frame takes the last voiced F0 before it (`last_voiced` before the first).

    f0: [T] Hz, 0 = unvoiced. Returns (filled [T] float32, uv [T] float32). Unlike
    `interpolate_unvoiced` it never looks ahead, so a stream and a whole file agree.
    """
    f = np.asarray(f0, dtype=np.float32)
    uv = (f > 0).astype(np.float32)
    idx = np.where(uv > 0, np.arange(f.size), -1)
    idx = np.maximum.accumulate(idx) if f.size else idx
    filled = np.where(idx >= 0, f[np.maximum(idx, 0)], np.float32(last_voiced)).astype(np.float32)
    return filled, uv


UNIT_TIME_DELAY = 1
"""Encoder frames by which `time` alignment lags: the unit of model frame k is the encoder frame
that started one encoder hop (20 ms) before k's own, so its 25 ms window is complete, after
resampling, within a 40 ms look-ahead. Whole-file `time` alignment uses the same rule."""


F0_TIME_DELAY = 1
"""Frames by which causal F0 lags: frame k takes the F0 measured at frame k - 1, so the F0
method has 3 frames (35 ms at 44.1 kHz / 512) of audio after the frame it measures within
a 40 ms look-ahead (pm needs ~30 ms plus its frame-grid slack)."""


F0_WARMUP_SECONDS = 0.1
"""Causal F0 is unvoiced for the first 100 ms of a stream: until then the F0 method has no full
analysis window (pm needs 60 ms at a 50 Hz floor), and what it reports from a partial one
depends on how much audio it was given, which a stream and a whole file do not share."""


def f0_warmup_frames(sample_rate: int, hop: int) -> int:
    """Frames covered by `F0_WARMUP_SECONDS` on a (sample_rate, hop) grid."""
    return int(math.ceil(F0_WARMUP_SECONDS * sample_rate / hop))


def causal_f0(f0_raw: np.ndarray, previous_raw: float = 0.0, last_voiced: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Causal F0 track of raw F0 [T]: delayed by one frame, unvoiced frames hold the last voiced value.

    previous_raw: raw F0 of the frame before f0_raw[0] (0 at a stream start); last_voiced: last
    voiced F0 before it. Returns (f0 [T] float32, uv [T] float32).
    """
    f = np.asarray(f0_raw, dtype=np.float32)
    delayed = np.concatenate([np.array([previous_raw], np.float32), f[:-1]]) if f.size else f
    return hold_unvoiced(delayed, last_voiced)


def time_unit_indices(first_frame: int, n_frames: int, model_rate: int, model_hop: int,
                      encoder_rate: int, encoder_hop: int, delay: int = UNIT_TIME_DELAY) -> np.ndarray:
    """Causal encoder frame of each model frame: floor(k * model_period / encoder_period) - delay, >= 0."""
    k = np.arange(first_frame, first_frame + n_frames, dtype=np.int64)
    return np.maximum((k * model_hop * encoder_rate) // (model_rate * encoder_hop) - delay, 0)


def align_units(units: np.ndarray, n_frames: int, mode: str = "nearest") -> np.ndarray:
    """Stretch units [dim, Tu] to [dim, n_frames] as so-vits-svc's `repeat_expand_2d` (nearest / left)."""
    return unit_helpers.align_units(units, n_frames, mode)


def unit_columns(n_units: int, n_frames: int, mode: str = "nearest") -> np.ndarray:
    """The unit column `align_units` gives each of `n_frames` frames: [n_frames] int64, so that
    `units[:, unit_columns(Tu, n, mode)]` equals `align_units(units, n, mode)` (a pure column pick)."""
    if n_units <= 0:
        raise ValueError("units have no frames")
    if mode == "left":
        return unit_helpers.left_indices(n_units, n_frames)
    if mode == "nearest":
        return unit_helpers.nearest_indices(n_units, n_frames)
    raise ValueError(f"unknown unit_interpolate_mode {mode!r}; use one of {unit_helpers.UNIT_INTERPOLATE_MODES}")
