"""Whole-file conversion: the host loop around the conversion graph.

Flow for one file (docs/bundle.md, "Converting a file"): decode -> resample to the model rate -> DC
removal -> silence slices -> per voiced slice: zero padding to whole frames, its 16 kHz copy, windows of
frames with context (`plan_chunks`) -> per window one run of the conversion graph, which does
everything from audio to audio (speech encoder, pitch, F0 and unit alignment, unvoiced interpolation,
transpose, volume, cluster blend, automatic F0, NSF phases, generator) -> crossfade into the file's
output -> loudness mix. The host's own per-window work: cutting the window, drawing its noise
(`NoiseStream`, by absolute frame) and carrying the NSF phase (`phase_out` of a window starts the next).

Graphs (`svc_runtime.pipeline.window`): `converter` when the bundle's pitch network gives the F0;
`converter_f0` with the host's F0 (classic methods, CREPE with Viterbi); the halves `speech_encoder`
+ `synthesis` when the host works on the units (faiss retrieval) or needs them after synthesis
(shallow diffusion, only-diffusion). Windows of a slice run in order (each carries the phase into
the next); windows of different slices and files with equal lengths share a batch.

Memory: what grows with the input's length is the decoded input and its model-rate copy while
preparing (the copy is dropped unless the loudness mix needs it), each slice's 16 kHz audio (and its
model-rate audio for vol models or diffusion) until rendered, and the output; what a window's run
holds is bounded by `max_window_seconds` and the batch budget. `long_file.py` converts long files with the
same slices, windows and stitch over sliding buffers instead, in memory that does not grow with length.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import time
from dataclasses import dataclass, field

import numpy as np

from svc_runtime.audio.decode import DecodedAudio
from svc_runtime.audio.dsp import remove_dc
from svc_runtime.audio.resample import resample, resampled_length
from svc_runtime.pipeline.features import F0Source, make_f0_source
from svc_runtime.pipeline.noise import NoiseStream
from svc_runtime.pipeline.options import ConvertOptions
from svc_runtime.pipeline.retrieval import ClusterCentres, FeatureIndex, RetrievalError, blend
from svc_runtime.pipeline.spkmix import SpeakerMix, load_speaker_mix
from svc_runtime.pipeline.window import (
    Controls,
    Window,
    WindowResult,
    pitch_in_graph,
    run_windows,
    samples_at,
    speaker_index,
)
from svc_runtime.signal.chunking import Chunk, plan_chunks, stitch
from svc_runtime.signal.f0 import NoVoiceError, interpolate_unvoiced, shift_f0
from svc_runtime.signal.nsf_phase import PHASE_MAX_FRAMES, frame_start_phases
from svc_runtime.signal.slicer import slice_on_silence
from svc_runtime.signal.units import unit_columns
from svc_runtime.signal.volume import change_rms, volume_envelope
from svc_runtime.vocabulary import ENCODER_SAMPLE_RATE


@functools.cache
def _malloc_trim():
    """glibc's `malloc_trim`, or None where the C library has none (macOS, musl, Windows)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


def release_free_heap() -> None:
    """Hand the C heap's free pages back to the OS (glibc `malloc_trim(0)`; a no-op elsewhere).

    ONNX Runtime frees a run's working tensors when the run ends, but glibc keeps most of that memory
    resident, so each long window's run would start from a higher resident set than the last.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


MIN_SEGMENT_FRAMES = 16
"""Shortest window: short slices are padded with zeros up to this many frames."""
DIFFUSION_STREAM = 1 << 16
"""Offset of the diffusion noise streams from the generator's (one stream per slice each)."""


@dataclass
class SliceWork:
    """One voiced slice, padded to `n_frames` whole frames, waiting for its windows to run.

    Slice coordinates: frame 0 / sample 0 is `pad` samples before `start` in the input. wav16k: the
    padded slice at 16 kHz; audio: at the model rate (kept only when the graph or diffusion reads it);
    f0: raw host F0 [n_frames] (None when the graph tracks pitch itself), filled for the first `f0_chunks`
    chunks (`Converter.fill_f0`); phase: NSF phase before the next window to run; done: windows run so far.
    """

    start: int
    end: int
    pad: int
    n_frames: int
    stream: int
    wav16k: np.ndarray | None
    audio: np.ndarray | None
    f0: np.ndarray | None
    noise: NoiseStream
    chunks: list[Chunk]
    phase: np.ndarray
    done: int = 0
    voiced: int = 0
    f0_chunks: int = 0
    diffusion_phase: np.ndarray | None = None

    def release(self) -> None:
        """Drop the audio once the last window ran; the slice cannot be rendered again."""
        self.wav16k = self.audio = self.f0 = None


@dataclass
class PreparedFile:
    """A decoded file with its voiced slices prepared; `render` turns it into audio (once).

    source: the input at the model rate [N], kept only for the loudness mix.
    """

    source: np.ndarray | None
    n_out: int
    segments: list[SliceWork]
    notes: list[str] = field(default_factory=list)
    prepare_seconds: float = 0.0

    @property
    def released(self) -> bool:
        """True once a render has consumed (some of) its slices: prepare the audio again to re-render it."""
        return any(seg.done > 0 for seg in self.segments)


class Converter:
    """Converts audio with a loaded `svc_runtime.Bundle` and fixed `ConvertOptions`."""

    def __init__(self, bundle, options: ConvertOptions = ConvertOptions()) -> None:
        self.bundle = bundle
        self.options = options
        model = bundle.manifest.model
        self.model = model
        self.sr = model.sampling_rate
        self.hop = model.hop_length
        if options.auto_predict_f0 and not model.use_automatic_f0_prediction:
            raise ValueError(f"{bundle.path}: auto F0 prediction needs a model trained with use_automatic_f0_prediction")
        self.mix: SpeakerMix | None = None
        self.speaker_id: int | None = None
        if options.speaker_mix is not None:
            self.mix = load_speaker_mix(options.speaker_mix, bundle.speakers)
        else:
            self.speaker_id = speaker_index(bundle, options.speaker)
        self.diffusion = self._diffusion() if options.shallow_diffusion or options.only_diffusion else None
        self.enhancer = bundle.enhancer() if options.enhance and not options.shallow_diffusion else None
        self.index, centres = self._blend_source() if options.blend_ratio > 0 else (None, None)
        self.role = self._role()
        self.f0_source: F0Source | None = (
            make_f0_source(bundle, options.f0_method) if self.role != "converter" else None
        )
        self.controls = Controls.create(options.transpose, options.noise_scale, model.ssl_dim, centres,
                                        options.blend_ratio, options.auto_predict_f0)
        bundle.open(*self.graphs_used)
        frames_per_s = self.sr / self.hop
        self.context = int(math.ceil(options.context_seconds * frames_per_s))
        kept = options.clip_seconds if options.clip_seconds > 0 else options.max_window_seconds
        self.window = int(math.ceil(kept * frames_per_s)) + 2 * self.context
        if self.window > PHASE_MAX_FRAMES:
            raise ValueError(f"a window of {kept:g} s plus context is {self.window} frames, more than the conversion "
                             f"graph's phase sums allow ({PHASE_MAX_FRAMES}); choose a shorter --max-window / --clip-seconds")
        self.fade = int(round(options.crossfade_seconds * self.sr))

    # ------------------------------------------------------------------ setup

    @property
    def f0_name(self) -> str:
        """What tracks the F0: the bundle's pitch network inside the graph, or the host's method."""
        if self.f0_source is None:
            return f"{self.bundle.manifest.pitch.method} (inside the conversion graph)"
        return self.f0_source.name

    @property
    def graphs_used(self) -> tuple[str, ...]:
        """The roles of the graphs this conversion runs."""
        extra = ("speech_encoder",) if self.role == "synthesis" else ()
        uses_pitch_graph = self.f0_source is not None and getattr(self.f0_source, "bundle", None) is not None
        return (self.role, *extra, *(("pitch",) if uses_pitch_graph else ()))

    def _role(self) -> str:
        """The graph this conversion runs (see the module docstring)."""
        o, bundle = self.options, self.bundle
        if self.index is not None or self.diffusion is not None:
            needed = ("speech_encoder", "synthesis")
        elif pitch_in_graph(self.bundle, o.f0_method):
            needed = ("converter",)
        else:
            needed = ("converter_f0",)
        missing = [role for role in needed if not bundle.has_graph(role)]
        if missing:
            raise ValueError(f"{bundle.path}: the bundle has no {' / '.join(missing)} graph (needed for "
                             f"{'retrieval / diffusion' if len(needed) > 1 else 'this F0 method'}); re-export it with "
                             "svc-export" + ("" if o.f0_method is None else " or choose another --f0-method"))
        return needed[-1]

    def _blend_source(self) -> tuple[FeatureIndex | None, np.ndarray | None]:
        """(faiss index, None) or (None, k-means centres [K, D]) of the chosen speaker (per `blend_mode`)."""
        o = self.options
        name = None
        if self.speaker_id is not None:
            name = next((n for n, i in self.bundle.speakers.items() if i == self.speaker_id), None)
        kinds = ("index", "cluster") if o.blend_mode == "auto" else ({"retrieval": "index"}.get(o.blend_mode, "cluster"),)
        for kind in kinds:
            for aux in self.bundle.manifest.aux_files:
                if aux.kind == kind and aux.speaker in (None, name):
                    path = self.bundle.path / aux.file
                    if kind == "index":
                        return FeatureIndex(path, self.model.ssl_dim), None
                    return None, ClusterCentres(path, self.model.ssl_dim).centres
        raise RetrievalError(
            f"{self.bundle.path}: blend ratio {o.blend_ratio} needs a retrieval index or cluster file for "
            f"speaker {name!r}; the bundle has none (export with --index/--cluster) or set the ratio to 0"
        )

    def _diffusion(self):
        """The bundle's shallow-diffusion runtime, checked against the model and the options."""
        o, diffusion = self.options, self.bundle.diffusion()
        spec = diffusion.spec
        if (spec.sampling_rate, spec.hop_size) != (self.sr, self.hop):
            raise ValueError(
                f"{self.bundle.path}: the diffusion model works at {spec.sampling_rate} Hz / hop {spec.hop_size}, the "
                f"generator at {self.sr} Hz / hop {self.hop}; so-vits-svc needs one frame grid for both"
            )
        if spec.unit_channels != self.model.ssl_dim:
            raise ValueError(f"{self.bundle.path}: the diffusion model takes {spec.unit_channels}-dim units, "
                             f"the speech encoder gives {self.model.ssl_dim}")
        if o.shallow_diffusion and o.k_step > spec.k_step_max:
            raise ValueError(f"k_step {o.k_step}: the diffusion model was trained for at most {spec.k_step_max} "
                             f"shallow steps (k_step_max); choose 1..{spec.k_step_max}")
        if o.only_diffusion and not spec.can_run_alone:
            raise ValueError(
                f"{self.bundle.path}: the diffusion model was trained for shallow diffusion only (k_step_max="
                f"{spec.k_step_max} < timesteps={spec.timesteps}); use shallow diffusion instead of only diffusion"
            )
        self.diffusion_speakers = self._diffusion_speaker_map(spec)
        return diffusion

    def _diffusion_speaker_map(self, spec) -> np.ndarray:
        """[S, S_diffusion] matrix taking the generator's speaker weights to the diffusion model's:
        a speaker maps by name when the diffusion model names it, else by id (as so-vits-svc passes sid)."""
        matrix = np.zeros((self.model.n_speakers, spec.n_spk), np.float32)
        if spec.n_spk == 1:
            matrix[:, 0] = 1.0
            return matrix
        for name, sid in self.bundle.speakers.items():
            target = spec.speakers.get(name, sid)
            if 0 <= target < spec.n_spk:
                matrix[sid, target] = 1.0
        used = [self.speaker_id] if self.speaker_id is not None else range(self.model.n_speakers)
        missing = [s for s in used if not matrix[s].any()]
        if missing:
            names = [n for n, i in self.bundle.speakers.items() if i in missing]
            raise ValueError(f"speakers {names} have no counterpart among the diffusion model's {spec.n_spk} "
                             f"speakers {sorted(spec.speakers)}")
        return matrix

    # ------------------------------------------------------------------ prepare

    def prepare(self, decoded: DecodedAudio) -> PreparedFile:
        """Everything before the graph runs: model rate, DC removal, slicing, padding, 16 kHz copies, host F0."""
        t0 = time.perf_counter()
        x = resample(decoded.samples, decoded.sample_rate, self.sr)
        if self.options.remove_dc:  # in place on a resampled copy; never on the caller's samples
            x = remove_dc(x, self.sr, out=None if np.may_share_memory(x, decoded.samples) else x)
        n_out = resampled_length(decoded.samples.shape[0], decoded.sample_rate, self.sr)
        segments = []
        for seg in slice_on_silence(x, self.sr, self.options.slicer):
            if seg.silent or seg.length == 0:
                continue
            segments.append(self.prepare_slice(x, seg.start, seg.end, stream=len(segments)))
        release_free_heap()
        if self.options.f0_filter and self.f0_source is not None and not any(s.voiced for s in segments):
            raise NoVoiceError("no voiced frame found (f0 filter is on): the pitch tracker heard no voice")
        return PreparedFile(
            source=x if self.options.loudness_mix < 1.0 else None, n_out=n_out, segments=segments,
            notes=list(decoded.notes), prepare_seconds=time.perf_counter() - t0,
        )

    def slice_layout(self, start: int, end: int) -> tuple[int, int]:
        """(pad, n_frames) of the slice of samples [start, end): zero padding each side, then whole frames."""
        pad = int(round(self.options.pad_seconds * self.sr))
        return pad, max(MIN_SEGMENT_FRAMES, -(-(end - start + 2 * pad) // self.hop))

    def new_slice(self, start: int, end: int, stream: int, audio, wav16k) -> SliceWork:
        """A slice's work over its padded model-rate `audio` and its 16 kHz copy `wav16k` (arrays, or any
        object that slices like one: the long-file path passes sliding buffers)."""
        pad, n = self.slice_layout(start, end)
        noise = NoiseStream(self.options.seed, stream, self.model.inter_channels, self.hop, self.model.n_harmonics)
        return SliceWork(
            start=start, end=end, pad=pad, n_frames=n, stream=stream, wav16k=wav16k, audio=audio,
            f0=None if self.f0_source is None else np.zeros(n, np.float32), noise=noise,
            chunks=plan_chunks(n, self.window, self.context), phase=noise.initial_phase(),
        )

    def prepare_slice(self, x: np.ndarray, start: int, end: int, stream: int = 0) -> SliceWork:
        """Samples [start, end) of `x` (model rate), padded with zeros each side, ready for its windows."""
        pad, n = self.slice_layout(start, end)
        audio = np.zeros(n * self.hop, np.float32)
        audio[pad : pad + end - start] = x[start:end]
        seg = self.new_slice(start, end, stream, audio, resample(audio, self.sr, ENCODER_SAMPLE_RATE))
        self.fill_f0(seg, n)
        if not (self.model.vol_embedding or self.diffusion is not None):
            seg.audio = None  # only the graph's volume input or diffusion reads it again
        return seg

    def fill_f0(self, seg: SliceWork, through: int) -> None:
        """The host's F0 of `seg`, chunk by chunk in order, until frames [0, through) are filled; each chunk's
        frames come from the pitch tracker run over that chunk's own window (no-op when the graph tracks pitch)."""
        if seg.f0 is None:
            return
        hop = self.hop
        while seg.f0_chunks < len(seg.chunks) and seg.chunks[seg.f0_chunks].keep_start < through:
            ch = seg.chunks[seg.f0_chunks]
            a, b = ch.win_start, ch.win_end
            f0 = self.f0_source(seg.audio[a * hop : b * hop], b - a)[ch.keep_start - a : ch.keep_end - a]
            seg.f0[ch.keep_start : ch.keep_end] = f0
            seg.voiced += int((f0 > 0).sum())
            seg.f0_chunks += 1

    def _speaker_weights(self, first_sample: int, n: int, n_total: int) -> np.ndarray:
        weights = np.zeros((n, self.model.n_speakers), np.float32)
        if self.mix is None:
            weights[:, self.speaker_id] = 1.0
            return weights
        times = (first_sample + (np.arange(n) + 0.5) * self.hop) / max(n_total, 1)
        return self.mix.weights_at(times, self.model.n_speakers)

    # ------------------------------------------------------------------ render

    def render(self, files: list[PreparedFile]) -> list[np.ndarray]:
        """Run the graph over every window of `files` -> audio [n_out] each (at the model rate).

        Raises the first file's error (FloatingPointError for non-finite output, NoVoiceError with the
        F0 filter); see `render_each`.
        """
        results = self.render_each(files)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results

    def render_each(self, files: list[PreparedFile]) -> list[np.ndarray | FloatingPointError | NoVoiceError]:
        """As `render`, but a file whose output is not finite (or that has no voice with the F0 filter on)
        gets its error in its place (an error of a graph run itself still raises: it cannot be pinned on one file).

        Windows run in rounds: round r runs the r-th window of every slice (a slice's windows depend on
        each other through the carried phase), batching windows of equal length across slices and files.
        """
        outputs = [np.zeros(f.n_out, np.float32) for f in files]
        owner: dict[int, tuple[np.ndarray, int]] = {}
        pending: list[SliceWork] = []
        for index, (f, out) in enumerate(zip(files, outputs)):
            for seg in f.segments:
                if seg.done:
                    raise ValueError("this prepared file was already rendered (its slices were released); prepare it again")
                owner[id(seg)] = (out, index)
                pending.append(seg)
        voiced = [sum(seg.voiced for seg in f.segments) for f in files]
        while pending:
            groups: dict[tuple[int, int, int], list[tuple[SliceWork, Window]]] = {}
            for seg in pending:
                window = self.window_for(seg, seg.chunks[seg.done], owner[id(seg)][0].shape[0])
                groups.setdefault(window.batch_key(), []).append((seg, window))
            for key, items in groups.items():
                per_batch = self._batch_capacity(key[0])
                for i in range(0, len(items), per_batch):
                    batch = items[i : i + per_batch]
                    results = self.run_batch(batch)
                    for (seg, _), result in zip(batch, results):
                        out, index = owner[id(seg)]
                        self.place(out, seg, seg.chunks[seg.done], result.audio)
                        if self.f0_source is None:
                            voiced[index] += int(result.uv.sum())
                        seg.phase = result.phase_out
                        seg.done += 1
                        if seg.done == len(seg.chunks):
                            seg.release()
                    release_free_heap()
            pending = [seg for seg in pending if seg.done < len(seg.chunks)]
        results: list[np.ndarray | FloatingPointError | NoVoiceError] = []
        for f, out, count in zip(files, outputs, voiced):
            try:
                if self.options.f0_filter and count == 0:
                    raise NoVoiceError("no voiced frame found (f0 filter is on): the pitch tracker heard no voice")
                results.append(self._finish(f, out))
            except (FloatingPointError, NoVoiceError) as e:
                results.append(e)
        return results

    def window_for(self, seg: SliceWork, ch: Chunk, n_total: int) -> Window:
        """The graph inputs of chunk `ch` of slice `seg` (units for the `synthesis` graph included)."""
        a, b, hop = ch.win_start, ch.win_end, self.hop
        self.fill_f0(seg, b)
        is_last = seg.done + 1 == len(seg.chunks)
        state_frame = (b - a) if is_last else seg.chunks[seg.done + 1].win_start - a
        wav16k = seg.wav16k[samples_at(a, hop, self.sr) : samples_at(b, hop, self.sr)]
        window = Window(
            wav16k=wav16k, start=a, frames=b - a, noise=seg.noise, phase_in=seg.phase, state_frame=state_frame,
            speaker=self._speaker_weights(seg.start - seg.pad + a * hop, b - a, n_total),
            f0=None if seg.f0 is None else seg.f0[a:b],
            audio=None if seg.audio is None else seg.audio[a * hop : b * hop],
        )
        if self.role == "synthesis":
            units = self.bundle.encode_units(wav16k)[0]
            window.units = units if self.index is None else blend(units, self.index.retrieve(units), self.options.blend_ratio)
        return window

    def _batch_capacity(self, length: int) -> int:
        """Windows of `length` frames per graph run: `batch_size`, fewer when together they would exceed
        `batch_seconds` of audio (always at least one)."""
        budget = int(self.options.batch_seconds * self.sr)
        return max(1, min(self.options.batch_size, budget // (length * self.hop)))

    def run_batch(self, batch: list[tuple[SliceWork, Window]]) -> list[WindowResult]:
        """The conversion graph over a batch of windows, then only-diffusion / shallow diffusion / enhancer."""
        windows = [w for _, w in batch]
        if self.options.only_diffusion:
            results = [self._undiffused(w) for w in windows]
        else:
            results = run_windows(self.bundle, self.role, windows, self.controls)
        if self.diffusion is not None:
            self._diffuse(batch, results)
        if self.enhancer is not None:
            for (seg, w), r in zip(batch, results):
                r.audio = self._enhance(r.audio, r.f0, seg, w.start)
        return results

    def _undiffused(self, w: Window) -> WindowResult:
        """Only-diffusion has no generator: the F0 it renders with, as the graph would compute it."""
        f0, uv = interpolate_unvoiced(w.f0)
        f0 = shift_f0(f0.astype(np.float32), self.options.transpose)
        empty = np.zeros(w.frames * self.hop, np.float32)
        return WindowResult(audio=empty, f0=f0, uv=uv, phase_out=w.phase_in)

    def _diffuse(self, batch: list[tuple[SliceWork, Window]], results: list[WindowResult]) -> None:
        """Shallow diffusion of each window's audio in place (only-diffusion: rendered from noise); the noise
        and the vocoder's sine phases come from each slice's own stream, so overlapping windows agree."""
        o, hop = self.options, self.hop
        vocoder = self.diffusion.spec.vocoder
        for (seg, w), r in zip(batch, results):
            n = w.frames
            c = w.units[:, unit_columns(w.units.shape[1], n, self.model.unit_interpolate_mode)][None]
            f0 = r.f0[None].astype(np.float32)
            vol = volume_envelope(w.audio if (self.model.vol_embedding or o.only_diffusion) else r.audio, hop)[None]
            stream = NoiseStream(o.seed, DIFFUSION_STREAM + seg.stream, vocoder.num_mels, hop, vocoder.harmonics)
            noise = stream.prior(w.start, w.start + n)[None, None]
            sine = stream.sine(w.start, w.start + n)[None]
            if seg.diffusion_phase is None:  # the vocoder's sines start at phase 0, then carry like the NSF phase
                seg.diffusion_phase = np.zeros((1, vocoder.harmonics))
            phase, _ = frame_start_phases(f0, hop, source_sr=vocoder.sampling_rate, harmonics=vocoder.harmonics,
                                          initial_phase=seg.diffusion_phase)
            _, seg.diffusion_phase = frame_start_phases(f0[:, : w.state_frame], hop, source_sr=vocoder.sampling_rate,
                                                        harmonics=vocoder.harmonics, initial_phase=seg.diffusion_phase)
            speaker = np.ascontiguousarray(w.speaker[None] @ self.diffusion_speakers)
            if o.only_diffusion:
                mel = self.diffusion.render_mel(c, f0, vol, None, None, None, o.diffusion_method, o.diffusion_speedup,
                                                noise, speaker=speaker)
                r.audio = self.diffusion.vocoder(mel, f0, phase=phase.astype(np.float32), sine_noise=sine)[0, 0]
            else:
                r.audio = self.diffusion.shallow(
                    r.audio[None, None], c, f0, vol, k_step=o.k_step, method=o.diffusion_method,
                    speedup=o.diffusion_speedup, noise=noise, sine_noise=sine, speaker=speaker,
                    phase=phase.astype(np.float32),
                )[0, 0]

    def _enhance(self, audio: np.ndarray, f0: np.ndarray, seg: SliceWork, start: int) -> np.ndarray:
        """One window re-synthesised by the NSF-HiFiGAN vocoder (seeded per slice and window)."""
        seed = np.random.SeedSequence([self.options.seed & 0xFFFFFFFF, seg.stream, start])
        return self.enhancer.enhance(audio, self.sr, f0, self.hop, adaptive_key=self.options.enhancer_adaptive_key,
                                     seed=int(seed.generate_state(1)[0]))

    def place(self, out: np.ndarray, seg: SliceWork, ch: Chunk, piece: np.ndarray, origin: int = 0,
              n_out: int | None = None) -> None:
        """Crossfade one window's audio `piece` into the output `out` (`stitch`), clipped to the slice's own
        samples [seg.start, min(seg.end, n_out)): its padding is dropped, as the slice's neighbours own it.
        out[0] is file sample `origin`; n_out: the file's output length (default origin + len(out))."""
        n_out = origin + out.shape[0] if n_out is None else n_out
        hop, shift = self.hop, seg.start - seg.pad - origin  # slice sample 0 sits at `shift` in `out`
        stitch(out, piece, ch.win_start * hop + shift, ch.keep_start * hop + shift, ch.keep_end * hop + shift,
               self.fade, fade_in=ch.keep_start > 0, fade_out=ch.keep_end < seg.n_frames,
               clip=(seg.start - origin, min(seg.end, n_out) - origin))

    def final_before(self, seg: SliceWork, n_out: int) -> int:
        """The file sample before which the output is final once `seg.done` windows of `seg` are placed
        (the next window adds nothing before its crossfade; a finished slice owns nothing past its end)."""
        if seg.done < len(seg.chunks):
            return seg.start - seg.pad + seg.chunks[seg.done].keep_start * self.hop - self.fade // 2
        return min(seg.end, n_out)

    def _finish(self, f: PreparedFile, out: np.ndarray) -> np.ndarray:
        """Loudness mix and the finiteness check on a file's stitched output [n_out]."""
        if self.options.loudness_mix < 1.0:
            out = change_rms(f.source[: f.n_out], self.sr, out, self.sr, self.options.loudness_mix)
        if not np.all(np.isfinite(out)):
            raise FloatingPointError("the generator produced non-finite samples")
        return out

    # ------------------------------------------------------------------ one call

    def convert(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """Convert mono float32 `samples` at `sample_rate`; returns [round(N * sr_model / sample_rate)] at the model rate."""
        decoded = DecodedAudio(samples=np.asarray(samples, np.float32), sample_rate=sample_rate, channels=1)
        return self.render([self.prepare(decoded)])[0]
