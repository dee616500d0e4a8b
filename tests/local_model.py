"""A strictly local stand-in for a bundle's conversion graph, for testing the chunk and stream machinery.

It wraps a real `Bundle` (manifest, speakers) and answers `run("converter_f0", feeds)` with numpy
functions of short, known receptive field that still depend strongly on every input of the graph:
the units are fixed (a window's 16 kHz cut starts within half a sample of the whole file's grid, which a
sample-level projection would turn into noise; `test_pipeline.py` checks the cut itself), F0 is the host's track
with unvoiced frames interpolated and scaled as the real graph does, the NSF phases come from
`phase_in` and are carried to `state_frame`, and the audio is the NSF harmonic source scaled per frame
by the units, the speaker weights and the prior noise (smoothed over +-1 frame), plus the sine noise.
With such a model chunked and streamed conversion must equal whole-file conversion up to float
rounding away from the crossfades, so any error in windows, phases, noise alignment, batching or
stitching shows.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from svc_runtime.signal.f0 import interpolate_unvoiced
from svc_runtime.signal.nsf_phase import PHASE_FIXED_POINT_BITS, frame_start_phases, limbs_to_cycles, phase_to_limbs

ROLE = "converter_f0"
INPUTS = ("wav16k", "f0_in", "speaker", "f0_scale", "noise_scale", "noise_prior", "sine_noise", "phase_in",
          "state_frame", "cluster_centres", "cluster_ratio")


class LocalModel:
    def __init__(self, bundle, seed: int = 0):
        self._bundle = bundle
        self.manifest = bundle.manifest
        self.path = bundle.path
        self.sampling_rate = bundle.sampling_rate
        self.hop_length = bundle.hop_length
        self.speakers = bundle.speakers
        self.n_speakers = bundle.n_speakers
        m = bundle.manifest.model
        rng = np.random.default_rng(seed)
        self._proj = rng.standard_normal((m.ssl_dim, 400)).astype(np.float32) / 4.0
        self._read = rng.standard_normal(m.ssl_dim).astype(np.float32) / np.sqrt(m.ssl_dim)
        self._spk_gain = np.linspace(0.6, 1.4, m.n_speakers).astype(np.float32)
        self._smooth = np.array([0.25, 0.5, 0.25], np.float32)

    def speaker_id(self, speaker):
        return self._bundle.speaker_id(speaker)

    def has_graph(self, role: str) -> bool:
        return role == ROLE

    def open(self, *roles: str) -> None:
        assert set(roles) <= {ROLE}, roles

    def graph_entry(self, role: str):
        return SimpleNamespace(input_names=lambda: INPUTS)

    def _units(self, wav16k: np.ndarray, frames: int) -> np.ndarray:
        """[D, frames]: the same unit on every frame (see the module docstring)."""
        return np.repeat(np.tanh(self._proj[:, :1]), frames, axis=1).astype(np.float32)

    def run(self, role: str, feeds: dict) -> dict:
        assert role == ROLE, role
        m = self.manifest.model
        hop, one = m.hop_length, float(1 << PHASE_FIXED_POINT_BITS)
        batch, frames = feeds["f0_in"].shape
        c = np.stack([self._units(w, frames) for w in feeds["wav16k"]])
        filled = [interpolate_unvoiced(f) for f in feeds["f0_in"]]
        f0 = np.stack([f for f, _ in filled]).astype(np.float32) * feeds["f0_scale"][:, None]
        uv = np.stack([u for _, u in filled]).astype(np.float32)
        start = limbs_to_cycles(feeds["phase_in"])
        phase, _ = frame_start_phases(f0, hop, source_sr=m.nsf_source_sampling_rate, initial_phase=start)
        phase_out = np.empty_like(feeds["phase_in"])
        for b, k in enumerate(feeds["state_frame"]):
            _, end = frame_start_phases(f0[b : b + 1, :k], hop, source_sr=m.nsf_source_sampling_rate,
                                        initial_phase=start[b : b + 1])
            phase_out[b] = phase_to_limbs(np.round(end[0] * one).astype(np.int64))
        audio = self._synthesize(c, f0, uv, feeds["speaker"], phase.astype(np.float32), feeds["noise_prior"],
                                 feeds["sine_noise"], float(feeds["noise_scale"][0]))
        return {"audio": audio, "f0": f0, "uv": uv, "phase_out": phase_out}

    def _synthesize(self, c, f0, uv, speaker_weights, phase, prior, sine, noise_scale):
        m = self.manifest.model
        hop = m.hop_length
        batch, _, frames = c.shape
        gain = 0.25 + 0.15 * np.tanh(np.einsum("d,bdt->bt", self._read, c))
        gain = gain * (speaker_weights @ self._spk_gain) + noise_scale * 0.05 * prior[:, 0, :]
        padded = np.pad(gain, ((0, 0), (1, 1)), mode="edge")
        gain = sum(w * padded[:, i : i + frames] for i, w in enumerate(self._smooth))
        harmonics = np.arange(1, m.n_harmonics + 1, dtype=np.float32)
        inc = np.mod(f0[:, :, None].astype(np.float32) * harmonics / np.float32(m.nsf_source_sampling_rate), 1.0)
        j = np.arange(1, hop + 1, dtype=np.float64)[None, None, :, None]
        ph = phase.astype(np.float64)[:, :, None, :] + j * inc.astype(np.float64)[:, :, None, :]
        source = (np.sin(2 * np.pi * ph) / harmonics).sum(-1) * uv[:, :, None]
        audio = source * gain[:, :, None]
        audio = audio.reshape(batch, frames * hop) + 0.003 * sine[:, :, 0]
        return audio[:, None, :].astype(np.float32)
