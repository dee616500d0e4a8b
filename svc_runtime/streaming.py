"""Block-by-block conversion for live hosts: fixed block in, same-size block out, on the conversion graph.

Every call runs the conversion graph once over a window of a fixed number of frames that ends at the
newest complete frame: `context` frames of left context, the frames this block finalises, and the
look-ahead frames. The generator's decoder, most of the cost, renders only from `decode_from` on: the new
frames, the look-ahead and a short margin before them. Fixed shapes make every run alike (one allocation plan; on a GPU, one CUDA graph).
The stream starts as if preceded by silence, so the first window is as long as the others; frame 0 of
the noise and the phase is the first window's first frame.

Frames whose input is at least `lookahead` frames old are final: their audio is emitted, crossfaded over
`fade` samples with the previous call's tail. The NSF phase is carried from window to window (each run
returns the phase at the next window's first frame, which the fixed block size makes known in advance),
and the noise comes from the same counter-based stream as whole-file conversion, by absolute frame.
The output is the converted stream delayed by `delay_samples`; the algorithmic latency is one block plus
that delay (<= one block + 40 ms).

Differences from whole-file conversion, by construction: the networks see `context` frames to the left
and only the look-ahead frames to the right, no DC removal and no silence slicing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from svc_runtime.audio.resample import resample
from svc_runtime.bundle.binding import ConversionBinding
from svc_runtime.bundle.sessions import ProviderConfig
from svc_runtime.pipeline.features import make_f0_source
from svc_runtime.pipeline.noise import NoiseStream
from svc_runtime.pipeline.window import Controls, Window, pitch_in_graph, run_windows, speaker_index
from svc_runtime.signal.chunking import stitch
from svc_runtime.vocabulary import DEFAULT_SEED, ENCODER_SAMPLE_RATE

MIN_BLOCK_S = 0.020
MAX_BLOCK_S = 0.500
MAX_LOOKAHEAD_S = 0.040
GENERATOR_CONTEXT_S = 0.03
"""Left context the generator's decoder renders before a block's new frames (the networks before it see the
whole window). The decoder is most of a block's cost (62 % of a full-window run at the standard size), and
its output settles fast: 30 ms of margin is 111-118 dB from decoding the whole window, at 0.6x the time
per 200 ms block (benchmarks/README.md)."""


@dataclass(frozen=True)
class StreamingOptions:
    """Settings of a stream. Times in seconds.

    `context_seconds`: left context of the window the speech encoder, the pitch network and the generator's
    prior and flow see on every call. `generator_context_seconds`: how much of it the decoder (most of the
    cost) renders too; it renders the block's new frames, the look-ahead and this margin, nothing earlier
    (at most `context_seconds`; older bundles without the graph's `decode_from` input render everything).
    `f0_method`: None tracks pitch inside the graph (the bundle's pitch network); a classic method
    (pm, harvest, dio) runs on the host over the same window.
    """

    speaker: str | int | None = None
    transpose: float = 0.0
    f0_method: str | None = None
    noise_scale: float = 0.4
    seed: int = DEFAULT_SEED
    context_seconds: float = 0.5
    generator_context_seconds: float = GENERATOR_CONTEXT_S
    crossfade_seconds: float = 0.005
    lookahead_seconds: float = MAX_LOOKAHEAD_S

    def __post_init__(self) -> None:
        if not 0.0 < self.lookahead_seconds <= MAX_LOOKAHEAD_S:
            raise ValueError(f"look-ahead must be in (0, {MAX_LOOKAHEAD_S * 1000:.0f} ms]")
        if not 0.0 <= self.crossfade_seconds < self.lookahead_seconds:
            raise ValueError("crossfade must be >= 0 and shorter than the look-ahead")
        if self.context_seconds < 0.0:
            raise ValueError("context must be >= 0 s")
        if not 0.0 <= self.generator_context_seconds <= self.context_seconds:
            raise ValueError("generator context must be >= 0 s and at most the context")
        if not -48.0 <= self.transpose <= 48.0:
            raise ValueError("transpose must be within +-48 semitones")
        if not 0.0 <= self.noise_scale <= 2.0:
            raise ValueError("noise scale must be in [0, 2]")


class StreamingConverter:
    """Converts a stream in fixed blocks of `block_size` samples at the bundle's sample rate.

    device: run the graph through `ConversionBinding` on this provider (device-resident buffers, the
    phase carried on the device, one upload and one download per block; `cuda_graph=True` replays each
    block as a CUDA graph); None: `run_windows` through the bundle's session.
    """

    def __init__(self, bundle, block_size: int, options: StreamingOptions = StreamingOptions(),
                 device: ProviderConfig | None = None) -> None:
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
        if block_size < self.hop:
            raise ValueError(f"block size {block_size} is shorter than one frame ({self.hop} samples)")
        self.block_size = int(block_size)
        self.speaker_id = speaker_index(bundle, options.speaker)
        in_graph = pitch_in_graph(bundle, options.f0_method)
        self.role = "converter" if in_graph else "converter_f0"
        if not bundle.has_graph(self.role):
            raise ValueError(f"{bundle.path}: the bundle has no {self.role} graph; re-export it with svc-export")
        self.f0_source = None if in_graph else make_f0_source(bundle, options.f0_method)
        self.controls = Controls.create(options.transpose, options.noise_scale, m.ssl_dim)
        bundle.open(self.role)
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
        self.context = max(1, int(math.ceil(options.context_seconds * self.sr / self.hop)))
        # frames one window spans: left context + the most frames one block finalises + look-ahead
        self.window = self.context + -(-self.block_size // self.hop) + 1 + self.lookahead + 1
        self.delay_samples = self.lookahead * self.hop + self.hop - 1 + self.fade
        generator_context = int(math.ceil(options.generator_context_seconds * self.sr / self.hop))
        # the decoder starts `generator_context` frames before the first frame a block can emit (one frame
        # before the left context ends, for the crossfade), so every window renders the same frames
        has_input = "decode_from" in bundle.graph_entry(self.role).input_names()
        self.decode_from = max(0, self.context - 1 - generator_context) if has_input else 0
        self._speaker = np.zeros((self.window, m.n_speakers), np.float32)
        self._speaker[:, self.speaker_id] = 1.0
        self.binding = None if device is None else ConversionBinding(bundle, self.role, device)
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self, history: np.ndarray | None = None) -> None:
        """Forget the stream: the next block starts a new one.

        history: the audio that precedes the stream ([window * hop] samples at the model rate, e.g. to
        resume a stream); default silence. The first window's left context is this audio.
        """
        m = self.model
        self._noise = NoiseStream(self.options.seed, 0, m.inter_channels, self.hop, m.n_harmonics)
        lead = self.window * self.hop
        if history is None:
            history = np.zeros(lead, np.float32)
        history = np.asarray(history, np.float32).reshape(-1)
        if history.shape[0] != lead:
            raise ValueError(f"history must be {lead} samples (one window), got {history.shape[0]}")
        self._inp = history.copy()
        self._inp_start = 0  # buffer sample of _inp[0]
        self._n_in = self._inp.shape[0]
        # the first window's first frame is the origin of the noise and the phase
        self._origin = (self._n_in + self.block_size) // self.hop - self.window
        self._phase = self._noise.initial_phase()  # NSF phase before frame `_phase_frame`
        self._phase_frame = self._origin
        self._phase_on_device = False
        self._done = self.window  # frames emitted (the silence counts as emitted)
        self._tail = np.zeros(self.fade, np.float32)  # faded-out tail waiting for the next piece
        # output FIFO, starts with the delay; the first piece begins `fade` samples early (inside the silence)
        self._final = np.zeros(self.delay_samples - self.fade, np.float32)

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
        self._advance((self._n_in - self.lookahead * self.hop) // self.hop)  # one run per block, always
        drop = self._inp.shape[0] - (self.window + 2) * self.hop - self.block_size
        if drop > 0:
            self._inp = self._inp[drop:]
            self._inp_start += drop
        out = self._final[: self.block_size]
        self._final = self._final[self.block_size :]
        return out

    def _advance(self, k1: int) -> None:
        """Run the graph over the window ending at the newest complete frame; emit frames [done, k1), if any
        (at the start of a stream the first blocks only fill the look-ahead)."""
        hop, fe = self.hop, self._n_in // self.hop
        ga = fe - self.window
        if ga != self._phase_frame:
            raise RuntimeError(f"stream state out of step: window starts at frame {ga}, phase is for {self._phase_frame}")
        next_ga = (self._n_in + self.block_size) // hop - self.window
        audio = self._inp[ga * hop - self._inp_start : fe * hop - self._inp_start]
        window = Window(
            wav16k=resample(audio, self.sr, ENCODER_SAMPLE_RATE), start=ga - self._origin, frames=self.window,
            noise=self._noise,
            phase_in=self._phase, state_frame=next_ga - ga, speaker=self._speaker,
            f0=None if self.f0_source is None else self.f0_source(audio, self.window),
            audio=audio if self.model.vol_embedding else None, decode_from=self.decode_from,
        )
        if self.binding is None:
            result = run_windows(self.bundle, self.role, [window], self.controls)[0]
            converted, self._phase = result.audio, result.phase_out
        else:  # the phase stays on the device; only the audio comes back
            converted = self.binding.run([window], self.controls, carry_phase=self._phase_on_device).audio[0]
            self._phase_on_device = True
        self._phase_frame = next_ga
        if k1 > self._done:
            self._emit(converted, ga, self._done, k1)
            self._done = k1

    def _emit(self, audio: np.ndarray, ga: int, k0: int, k1: int) -> None:
        """Queue the piece for frames [k0, k1), crossfaded (`stitch`) with the previous piece's tail.

        The crossfade spans the `fade` samples before the join k0 * hop, where both pieces
        were computed from final input; samples before k1 * hop - fade are final now, the
        faded-out `fade` samples after them wait for the next piece.
        """
        hop, fade, half = self.hop, self.fade, self.fade // 2
        lo, hi = k0 * hop - fade, k1 * hop - fade
        span = np.zeros(hi - lo + fade, np.float32)  # samples [lo, hi + fade)
        span[:fade] = self._tail
        stitch(span, audio, (ga + self.decode_from) * hop - lo, half, hi - lo + half, fade, fade_in=True,
               fade_out=True)
        self._tail = span[hi - lo :].copy()
        self._final = np.concatenate([self._final, span[: hi - lo]])
