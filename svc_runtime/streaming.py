"""Block-by-block conversion for live hosts: fixed block in, same-size block out.

Each call finalises the frames whose input is at least `lookahead` frames old, computes
features from windows with left context (F0 by the chosen method on the model grid;
units from 16 kHz audio aligned to the encoder's hop, placed by time), keeps the F0
history (F0 one frame late, the last voiced F0 held over unvoiced frames), carries the NSF phase in
float64 from frame to frame, draws the generator noise from the same deterministic field
as whole-file conversion, runs the generator over the new frames plus left context and
the look-ahead frames, and crossfades at the join with the previous call's tail. The
output is the converted stream delayed by `delay_samples`; the algorithmic latency is
one block plus that delay (<= one block + 40 ms).

Differences from whole-file conversion, by construction: the networks see `context`
frames to the left and only the look-ahead frames to the right; F0 is one frame late, unvoiced
for the first 100 ms, and an unvoiced gap holds the last voiced F0 instead of interpolating across it (`causal_f0`);
units are placed by time one encoder frame late (`time_unit_indices`); no DC removal and
no silence slicing.
`Converter` with `ConvertOptions(causal=True)` makes the same choices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from svc_runtime.audio.resample import resample
from svc_runtime.pipeline.features import causal_f0, f0_warmup_frames, make_f0_source, time_unit_indices
from svc_runtime.pipeline.noise import NoiseField
from svc_runtime.pipeline.options import DEFAULT_SEED
from svc_runtime.signal.f0 import shift_f0
from svc_runtime.signal.nsf_phase import frame_start_phases
from svc_runtime.signal.slicer import crossfade_weights
from svc_runtime.signal.volume import volume_envelope

MIN_BLOCK_S = 0.020
MAX_BLOCK_S = 0.500
MAX_LOOKAHEAD_S = 0.040
F0_CONTEXT_S = 0.2
"""Left context of the F0 window: plenty for pm / harvest / the pitch networks' receptive field
on the frames it finalises (their F0 is kept, not recomputed)."""


@dataclass(frozen=True)
class StreamingOptions:
    """Settings of a stream. Times in seconds; block size in samples at the model rate.

    `context_seconds`: left context of the speech encoder's window (and of the F0 window, at most
    0.2 s). `generator_context_seconds`: left context of the generator's window (None: the same).
    The generator costs in proportion to its window, so a shorter context is the main lever on the
    per-block time (standard size, 32 ms blocks: 0.5 / 0.25 / 0.1 s -> 1 / 1.46 / 1.97x faster per
    block), but its text encoder attends to the whole window and its flows reach about +-32 frames,
    so the output moves (random weights, whose flows start as the identity: 4.7e-4 / 7.9e-4 at 0.25 /
    0.1 s on a 0.2 peak, against 5.5e-2 between the stream and the whole-file conversion).
    """

    speaker: str | int | None = None
    transpose: float = 0.0
    f0_method: str | None = None
    noise_scale: float = 0.4
    seed: int = DEFAULT_SEED
    context_seconds: float = 0.5
    generator_context_seconds: float | None = None
    crossfade_seconds: float = 0.005
    lookahead_seconds: float = MAX_LOOKAHEAD_S

    def __post_init__(self) -> None:
        if not 0.0 < self.lookahead_seconds <= MAX_LOOKAHEAD_S:
            raise ValueError(f"look-ahead must be in (0, {MAX_LOOKAHEAD_S * 1000:.0f} ms]")
        if not 0.0 <= self.crossfade_seconds < self.lookahead_seconds:
            raise ValueError("crossfade must be >= 0 and shorter than the look-ahead")
        if self.context_seconds < 0.0:
            raise ValueError("context must be >= 0 s")
        if self.generator_context_seconds is not None and self.generator_context_seconds < 0.0:
            raise ValueError("generator context must be >= 0 s")

    @property
    def generator_context(self) -> float:
        """Left context of the generator window in seconds (`context_seconds` when not set)."""
        g = self.generator_context_seconds
        return self.context_seconds if g is None else g


class StreamingConverter:
    """Converts a stream in fixed blocks of `block_size` samples at the bundle's sample rate."""

    def __init__(self, bundle, block_size: int, options: StreamingOptions = StreamingOptions()) -> None:
        m = bundle.manifest.model
        self.bundle = bundle
        self.options = options
        self.sr = m.sampling_rate
        self.hop = m.hop_length
        self.model = m
        if not MIN_BLOCK_S * self.sr - 1e-9 <= block_size <= MAX_BLOCK_S * self.sr + 1e-9:
            raise ValueError(
                f"block size {block_size} samples ({1000 * block_size / self.sr:.1f} ms) is outside "
                f"{MIN_BLOCK_S * 1000:.0f}-{MAX_BLOCK_S * 1000:.0f} ms at {self.sr} Hz"
            )
        self.block_size = int(block_size)
        speaker = options.speaker
        if speaker is None:
            if len(bundle.speakers) != 1:
                raise ValueError(f"choose a speaker: the bundle has {sorted(bundle.speakers)}")
            speaker = next(iter(bundle.speakers))
        self.speaker_id = bundle.speaker_id(speaker)
        self.f0_source = make_f0_source(bundle, options.f0_method)
        self.f0_warmup = f0_warmup_frames(self.sr, self.hop)
        self.f0_context = int(math.ceil(min(options.context_seconds, F0_CONTEXT_S) * self.sr / self.hop))
        self.fade = int(round(options.crossfade_seconds * self.sr))
        if self.fade > self.hop:
            raise ValueError(
                f"crossfade {options.crossfade_seconds * 1000:.1f} ms is longer than one frame "
                f"({1000 * self.hop / self.sr:.1f} ms)"
            )
        budget = int(math.floor(options.lookahead_seconds * self.sr))
        # Frames whose input is `lookahead` frames old are final; the crossfade with the next
        # piece ends on the last final frame's end. delay = look-ahead + frame rounding + fade.
        self.lookahead = (budget - self.fade - (self.hop - 1)) // self.hop
        if self.lookahead < 0:
            raise ValueError(
                f"look-ahead {options.lookahead_seconds * 1000:.0f} ms is too short for hop "
                f"{1000 * self.hop / self.sr:.1f} ms and crossfade {options.crossfade_seconds * 1000:.1f} ms"
            )
        # At least one frame of left context: the fade-in starts a fade before the join.
        self.context = max(1, int(math.ceil(options.generator_context * self.sr / self.hop)))
        self.delay_samples = self.lookahead * self.hop + self.hop - 1 + self.fade
        enc = bundle.manifest.speech_encoder
        period = self.sr * enc.hop_length / enc.sampling_rate
        if period != int(period):
            raise ValueError(
                f"streaming needs a whole number of {self.sr} Hz samples per encoder hop "
                f"({enc.hop_length} at {enc.sampling_rate} Hz), got {period}"
            )
        self.encoder_period = int(period)  # model-rate samples per encoder frame (882 at 44.1 kHz)
        self.unit_context = max(2, int(math.ceil(options.context_seconds * enc.sampling_rate / enc.hop_length)))
        self.encoder_min_samples = 2 * enc.hop_length
        self._ramp = crossfade_weights(self.fade) if self.fade else np.zeros(0, np.float32)
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        """Forget the stream: the next block starts a new one."""
        m = self.model
        self._noise = NoiseField(self.options.seed, m.inter_channels, self.hop, m.n_harmonics, stream=0)
        self._rand_ini = self._noise.rand_ini()[None]
        self._keep_samples = (
            (self.context + self.lookahead + 4) * self.hop + (self.unit_context + 3) * self.encoder_period
            + 2 * self.block_size
        )
        self._inp = np.zeros(0, np.float32)
        self._inp_start = 0  # absolute index of _inp[0]
        self._n_in = 0
        self._done = 0  # frames finalised
        self._hist_len = self.context + self.block_size // self.hop + 2
        self._c = np.zeros((m.ssl_dim, 0), np.float32)
        self._f0 = np.zeros(0, np.float32)
        self._uv = np.zeros(0, np.float32)
        self._phase = np.zeros((0, m.n_harmonics), np.float32)
        self._hist_start = 0  # absolute frame of the history's first frame
        self._last_voiced = 0.0
        self._prev_raw = 0.0
        self._end_phase: np.ndarray | None = None
        self._tail = np.zeros(self.fade, np.float32)  # faded-out tail waiting for the next piece
        self._final = np.zeros(self.delay_samples, np.float32)  # output FIFO, starts with the delay

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency: one block of buffering plus look-ahead, frame rounding and the crossfade."""
        return self.block_size + self.delay_samples

    @property
    def latency_seconds(self) -> float:
        return self.latency_samples / self.sr

    # ------------------------------------------------------------------ processing

    def process(self, block: np.ndarray) -> np.ndarray:
        """[block_size] float32 in -> [block_size] float32 out (the converted stream, delayed)."""
        x = np.asarray(block, dtype=np.float32).reshape(-1)
        if x.shape[0] != self.block_size:
            raise ValueError(f"expected a block of {self.block_size} samples, got {x.shape[0]}")
        if not np.all(np.isfinite(x)):
            x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        self._inp = np.concatenate([self._inp, x])
        self._n_in += x.shape[0]
        k1 = max(0, (self._n_in - self.lookahead * self.hop) // self.hop)
        if k1 > self._done:
            self._advance(k1)
        drop = self._inp.shape[0] - self._keep_samples
        if drop > 0:
            self._inp = self._inp[drop:]
            self._inp_start += drop
        out = self._final[: self.block_size]
        self._final = self._final[self.block_size :]
        return out

    def _audio(self, a_frame: int, b_frame: int) -> np.ndarray:
        """Input samples of frames [a, b)."""
        a, b = a_frame * self.hop - self._inp_start, b_frame * self.hop - self._inp_start
        if a < 0:
            raise RuntimeError("streaming history too short for the requested context")
        return self._inp[a:b]

    def _units(self, k0: int, fe: int) -> np.ndarray:
        """Units [dim, fe - k0] of frames k0 .. fe by time (causal, see `time_unit_indices`).

        The encoder window starts on a multiple of the encoder hop, so its 16 kHz samples
        (resampled from the model-rate window) sit on the whole signal's 16 kHz grid; the
        resampler's edge transients fall in the left context and past the finalised frames.
        """
        enc = self.bundle.manifest.speech_encoder
        idx = time_unit_indices(k0, fe - k0, self.sr, self.hop, enc.sampling_rate, enc.hop_length)
        ja = max(0, int(idx[0]) - self.unit_context)
        start = max(ja * self.encoder_period, self._inp_start)
        ja = -(-start // self.encoder_period)
        lo = ja * self.encoder_period - self._inp_start
        wav16 = resample(self._inp[lo:], self.sr, enc.sampling_rate)
        if wav16.shape[0] == 0:
            return np.zeros((self.model.ssl_dim, fe - k0), np.float32)
        if wav16.shape[0] < self.encoder_min_samples:  # stream start: the first frames need only what is there
            wav16 = np.pad(wav16, (0, self.encoder_min_samples - wav16.shape[0]))
        units = self.bundle.encode_units(wav16)[0]
        local = np.clip(idx - ja, 0, units.shape[1] - 1)
        return np.ascontiguousarray(units[:, local])

    def _advance(self, k1: int) -> None:
        m, hop, k0 = self.model, self.hop, self._done
        fe = self._n_in // hop  # all complete frames (includes look-ahead frames)
        fa = max(0, k0 - self.f0_context)
        f0_win = self.f0_source(self._audio(fa, fe), fe - fa)
        raw_new = f0_win[k0 - fa :].copy()
        raw_new[: max(0, self.f0_warmup - k0)] = 0.0
        filled, uv_new = causal_f0(raw_new, self._prev_raw, self._last_voiced)
        f0_new = shift_f0(filled, self.options.transpose)
        c_new = self._units(k0, fe)
        n_fin = k1 - k0
        # F0 state after the final frames: raw F0 of frame k1 - 1 and the value it holds.
        self._prev_raw = float(raw_new[n_fin - 1])
        self._last_voiced = float(filled[n_fin - 1])
        # Phases from the carried end phase at k0; carry on at k1.
        kw = {"initial_phase": self._end_phase} if self._end_phase is not None else {"rand_ini": self._rand_ini}
        src = dict(source_sr=m.nsf_source_sampling_rate, harmonics=m.n_harmonics)
        phases, _ = frame_start_phases(f0_new[None], hop, **src, **kw)
        _, self._end_phase = frame_start_phases(f0_new[None, :n_fin], hop, **src, **kw)
        # Generator window: history (left context) + new + look-ahead frames.
        ga = max(self._hist_start, k0 - self.context)
        h = slice(ga - self._hist_start, None)
        c = np.concatenate([self._c[:, h], c_new], axis=1)
        f0 = np.concatenate([self._f0[h], f0_new])
        uv = np.concatenate([self._uv[h], uv_new])
        phase = np.concatenate([self._phase[h], phases[0].astype(np.float32)])
        n = fe - ga
        speaker = np.zeros((1, n, m.n_speakers), np.float32)
        speaker[..., self.speaker_id] = 1.0
        vol = volume_envelope(self._audio(ga, fe), hop)[None] if m.vol_embedding else None
        audio = self.bundle.synthesize(
            c[None], f0[None], uv[None], speaker, phase=phase[None],
            prior=self._noise.prior(ga, fe)[None], sine=self._noise.sine(ga, fe)[None],
            noise_scale=self.options.noise_scale, vol=vol,
        )[0, 0]
        self._emit(audio, ga, k0, k1)
        keep = self._hist_len
        self._c = np.concatenate([self._c, c_new[:, :n_fin]], axis=1)[:, -keep:]
        self._f0 = np.concatenate([self._f0, f0_new[:n_fin]])[-keep:]
        self._uv = np.concatenate([self._uv, uv_new[:n_fin]])[-keep:]
        self._phase = np.concatenate([self._phase, phases[0, :n_fin].astype(np.float32)])[-keep:]
        self._hist_start = k1 - self._f0.shape[0]
        self._done = k1

    def _emit(self, audio: np.ndarray, ga: int, k0: int, k1: int) -> None:
        """Queue the piece for frames [k0, k1), crossfaded with the previous piece's tail.

        The crossfade spans the `fade` samples before the join k0 * hop, where both pieces
        were computed from final features; samples before k1 * hop - fade are final now.
        """
        hop, fade = self.hop, self.fade
        base = ga * hop
        lo = k0 * hop - fade if k0 > 0 else 0
        hi = k1 * hop - fade
        piece = audio[lo - base : hi - base].copy()
        if fade and k0 > 0:
            piece[:fade] = self._tail + piece[:fade] * self._ramp
        if fade:
            self._tail = audio[hi - base : hi - base + fade] * (1.0 - self._ramp)
        self._final = np.concatenate([self._final, piece])
