"""A strictly local stand-in for a bundle's networks, for testing the chunk and stream machinery.

It wraps a real `Bundle` (manifest, speakers, NSF phase helper) and replaces the two
networks by numpy functions with a short, known receptive field that still depend
strongly on every generator input: units come from a random projection of each 400-sample
16 kHz frame (like a conv front end, no attention); audio is the NSF harmonic source built
from the given per-frame phases, scaled per frame by the units, the speaker weights and
the prior noise (smoothed over +-1 frame, inside the stream's 2-frame look-ahead), plus the
sine noise. With such a model,
chunked and streamed conversion must equal whole-file conversion up to float rounding,
so any error in windows, phases, noise alignment, batching or stitching shows.
"""

from __future__ import annotations

import numpy as np


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
        return role in ("generator", "speech_encoder")

    def source_phases(self, f0, **kw):
        return self._bundle.source_phases(f0, **kw)

    def encode_units(self, wav16k: np.ndarray) -> np.ndarray:
        wav = np.asarray(wav16k, np.float32).reshape(-1)
        n = (wav.shape[0] - 400) // 320 + 1
        idx = np.arange(n)[:, None] * 320 + np.arange(400)[None, :]
        return np.tanh(3.0 * self._proj @ wav[idx].T)[None].astype(np.float32)

    def synthesize(self, c, f0, uv, speaker_weights, *, phase, prior, sine, noise_scale, vol=None):
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
