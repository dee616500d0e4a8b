"""Whole-file conversion: slice on silence, features per window, generator per chunk, stitch.

Flow for one file (all at the model rate unless said):
decode -> resample to the model rate -> DC removal -> silence slices -> per voiced slice:
zero padding, whole frames -> windows of frames with context: raw F0 + units per window,
kept on the window's own region -> unvoiced interpolation, transpose, optional F0
prediction, optional retrieval/cluster blend, volume, speaker weights, NSF phases in
float64 over the slice, noise from a deterministic field -> generator per chunk window,
chunks of equal length batched (across files too) up to a sample budget -> optional shallow
diffusion (or only diffusion in place of the generator) and enhancement per chunk -> crossfade
stitching straight into the file's output -> loudness mix.

Memory: what grows with the input's length is the decoded input and its copy at the model
rate while preparing (4 bytes a sample each; the resampled copy is DC-filtered in place and
dropped after preparing unless the loudness mix needs it), the output (4 bytes a sample), and
each slice's prepared features until its chunks are rendered (units on the encoder's ~50
frames/s grid, F0, voicing, speaker weights and phases per frame). The slicer and the DC filter
work in blocks (O(frames) and O(block) scratch). What rendering holds is bounded by the batch
budget and the longest chunk window: one set of batch buffers sized for the largest batch, a
few noise blocks per slice, and ONNX Runtime's working memory for the window, which sets the
peak of any input with a voiced slice as long as `max_window_seconds` (+ context).
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
from svc_runtime.pipeline.features import (
    ENCODER_RATE,
    causal_f0,
    f0_warmup_frames,
    make_f0_source,
    time_unit_indices,
    unit_columns,
    units_on_encoder_grid,
)
from svc_runtime.pipeline.noise import NoiseField
from svc_runtime.pipeline.options import ConvertOptions
from svc_runtime.pipeline.retrieval import (
    ClusterCentres,
    FeatureIndex,
    RetrievalError,
    blend,
)
from svc_runtime.pipeline.spkmix import SpeakerMix, load_speaker_mix
from svc_runtime.signal.f0 import NoVoiceError, interpolate_unvoiced, shift_f0
from svc_runtime.signal.nsf_phase import frame_start_phases
from svc_runtime.signal.slicer import (
    Chunk,
    crossfade_weights,
    plan_chunks,
    slice_on_silence,
)
from svc_runtime.signal.volume import change_rms, volume_envelope


@functools.cache
def _malloc_trim():
    """glibc's `malloc_trim`, or None where the C library has none (macOS, musl, Windows)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


def release_free_heap() -> None:
    """Hand the C heap's free pages back to the OS (glibc `malloc_trim(0)`; a no-op elsewhere).

    ONNX Runtime frees a run's working tensors when the run ends, but glibc keeps most of that
    memory resident (its dynamic mmap threshold moves large blocks onto the heap, where freed
    blocks stay mapped), so each long window's run started from a higher resident set than the
    last. Trimming after each run lets the next one reuse returned pages instead (micro model,
    5 min input: peak RSS ~945 -> ~810 MiB; the samples are unaffected). Costs a heap walk.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


MIN_SEGMENT_FRAMES = 16
"""Shortest generator input: short slices are padded with zeros up to this many frames."""
DIFFUSION_STREAM = 1 << 16
"""Offset of the diffusion noise streams from the generator's (one stream per slice each)."""


@dataclass
class SegmentWork:
    """One voiced slice, padded, with every generator input on its frame grid.

    Slice coordinates: frame 0 / sample 0 is `pad` samples before `start` in the input.
    c: content units, [dim, n_frames], or the encoder's [dim, Tu] with `c_columns` [n_frames]
    naming each frame's column (read them with `units`).
    After its last chunk is rendered, `release` drops the large inputs (units, volume,
    speaker weights, noise blocks); F0, voicing and phases (a few floats per frame) stay.
    """

    start: int
    end: int
    pad: int
    n_frames: int
    c: np.ndarray | None
    f0: np.ndarray
    uv: np.ndarray
    vol: np.ndarray | None
    speaker: np.ndarray | None
    phase: np.ndarray
    noise: NoiseField
    chunks: list[Chunk]
    diffusion_phase: np.ndarray | None = None
    diffusion_noise: NoiseField | None = None
    c_columns: np.ndarray | None = None

    def units(self, frames: slice, out: np.ndarray) -> np.ndarray:
        """Units of frames `frames` into `out` [dim, len]: columns `c_columns[frames]` of `c` when set
        (c then holds the encoder's frames, not one per generator frame), else `c[:, frames]`."""
        if self.c_columns is None:
            out[...] = self.c[:, frames]
        else:
            np.take(self.c, self.c_columns[frames], axis=1, out=out)
        return out

    def frame_units(self) -> np.ndarray:
        """Units of every frame: [dim, n_frames] float32 (a new array when `c` is on the encoder's grid)."""
        return self.c if self.c_columns is None else np.ascontiguousarray(self.c[:, self.c_columns])

    def release(self) -> None:
        """Drop what only the generator needed; the slice cannot be rendered again afterwards."""
        self.c = self.c_columns = self.vol = self.speaker = self.diffusion_phase = None
        self.noise.release()
        if self.diffusion_noise is not None:
            self.diffusion_noise.release()


@dataclass
class PreparedFile:
    """A decoded file with its voiced slices prepared; `render` turns it into audio (once).

    source: the input at the model rate [N], kept only for the loudness mix (None when
    `loudness_mix` is 1, so a prepared file does not hold a copy of its input).
    """

    source: np.ndarray | None
    n_out: int
    segments: list[SegmentWork]
    notes: list[str] = field(default_factory=list)
    prepare_seconds: float = 0.0
    voiced_frames: int = 0

    @property
    def released(self) -> bool:
        """True once a render has consumed (some of) its slices: prepare the audio again to re-render it."""
        return any(seg.c is None for seg in self.segments)


class Converter:
    """Converts audio with a loaded `svc_runtime.Bundle` and fixed `ConvertOptions`."""

    def __init__(self, bundle, options: ConvertOptions = ConvertOptions()) -> None:
        self.bundle = bundle
        self.options = options
        model = bundle.manifest.model
        self.sr = model.sampling_rate
        self.hop = model.hop_length
        self.model = model
        for role in ("generator", "speech_encoder"):
            if not bundle.has_graph(role):
                raise ValueError(f"{bundle.path}: the bundle has no {role} graph; re-export it with svc-export")
        if options.auto_predict_f0 and not bundle.has_graph("f0_predictor"):
            raise ValueError(f"{bundle.path}: auto F0 prediction needs the bundle's f0_predictor graph")
        self.mix: SpeakerMix | None = None
        self.speaker_id: int | None = None
        if options.speaker_mix is not None:
            self.mix = load_speaker_mix(options.speaker_mix, bundle.speakers)
        else:
            speaker = options.speaker
            if speaker is None:
                if len(bundle.speakers) != 1:
                    raise ValueError(f"choose a speaker: the bundle has {sorted(bundle.speakers)}")
                speaker = next(iter(bundle.speakers))
            self.speaker_id = bundle.speaker_id(speaker)
        self.diffusion = self._diffusion() if options.shallow_diffusion or options.only_diffusion else None
        self.enhancer = bundle.enhancer() if options.enhance and not options.shallow_diffusion else None
        self.f0_source = make_f0_source(bundle, options.f0_method)
        self.blender = self._blender() if options.blend_ratio > 0 else None
        frames_per_s = self.sr / self.hop
        self.context = int(math.ceil(options.context_seconds * frames_per_s))
        kept = options.clip_seconds if options.clip_seconds > 0 else options.max_window_seconds
        self.window = int(math.ceil(kept * frames_per_s)) + 2 * self.context
        self.fade = int(round(options.crossfade_seconds * self.sr))
        self._buffers: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ setup

    def _blender(self):
        """The retrieval index or cluster centres for the chosen speaker (per `blend_mode`)."""
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
                        index = FeatureIndex(path, self.model.ssl_dim)
                        return index.retrieve
                    return ClusterCentres(path, self.model.ssl_dim).nearest
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
        """Everything up to the generator: slicing, features, phases (no generator run)."""
        t0 = time.perf_counter()
        x = resample(decoded.samples, decoded.sample_rate, self.sr)
        if self.options.remove_dc:  # in place on a resampled copy; never on the caller's samples
            x = remove_dc(x, self.sr, out=None if np.may_share_memory(x, decoded.samples) else x)
        n_out = resampled_length(decoded.samples.shape[0], decoded.sample_rate, self.sr)
        segments = []
        voiced = 0
        for index, seg in enumerate(slice_on_silence(x, self.sr, self.options.slicer)):
            if seg.silent or seg.length == 0:
                continue
            work = self.prepare_segment(x, seg.start, seg.end, n_out, stream=index)
            voiced += int(work.uv.sum())
            segments.append(work)
        release_free_heap()  # the encoder's and pitch graph's working memory, before the generator's
        if self.options.f0_filter and voiced == 0:
            raise NoVoiceError("no voiced frame found (f0 filter is on): the pitch tracker heard no voice")
        return PreparedFile(
            source=x if self.options.loudness_mix < 1.0 else None, n_out=n_out, segments=segments,
            notes=list(decoded.notes), prepare_seconds=time.perf_counter() - t0, voiced_frames=voiced,
        )

    def prepare_segment(self, x: np.ndarray, start: int, end: int, n_total: int, stream: int = 0) -> SegmentWork:
        """Generator inputs for samples [start, end) of `x` (model rate), padded with zeros each side."""
        o, hop = self.options, self.hop
        pad = int(round(o.pad_seconds * self.sr))
        length = end - start
        n = max(MIN_SEGMENT_FRAMES, -(-(length + 2 * pad) // hop))
        audio = np.zeros(n * hop, np.float32)
        audio[pad : pad + length] = x[start:end]
        audio16 = resample(audio, self.sr, ENCODER_RATE)
        f0_raw = np.zeros(n, np.float32)
        for ch in plan_chunks(n, self.window, self.context):
            a, b = ch.win_start, ch.win_end
            f0_win = self.f0_source(audio[a * hop : b * hop], b - a)
            f0_raw[ch.keep_start : ch.keep_end] = f0_win[ch.keep_start - a : ch.keep_end - a]
        units = units_on_encoder_grid(self.bundle, audio16, self.window * hop / self.sr, self.context * hop / self.sr)
        del audio16
        if not o.causal:
            columns = unit_columns(units.shape[1], n, self.model.unit_interpolate_mode)
        else:
            enc = self.bundle.manifest.speech_encoder
            idx = time_unit_indices(0, n, self.sr, hop, enc.sampling_rate, enc.hop_length)
            columns = np.minimum(idx, units.shape[1] - 1)
        if self.blender is not None or o.auto_predict_f0:  # these read every frame's units now
            c, columns = np.ascontiguousarray(units[:, columns]), None
        else:  # ~50 unit frames/s instead of the generator's ~86: frames pick their column per chunk
            c = np.ascontiguousarray(units)
        del units
        if o.causal:
            f0_raw[: f0_warmup_frames(self.sr, hop)] = 0.0
            f0, uv = causal_f0(f0_raw)
        else:
            f0, uv = interpolate_unvoiced(f0_raw)
        f0 = shift_f0(f0.astype(np.float32), o.transpose)
        if self.blender is not None:
            c = blend(c, self.blender(c), o.blend_ratio)
        vol = volume_envelope(audio, hop) if self.model.vol_embedding or o.only_diffusion else None
        speaker = self._speaker_weights(start - pad, n, n_total)
        chunks = plan_chunks(n, self.window, self.context)
        if o.auto_predict_f0:
            f0 = self._predict_f0(c, f0, uv, speaker, vol, chunks)
        noise = NoiseField(o.seed, self.model.inter_channels, hop, self.model.n_harmonics, stream=stream)
        phase, _ = self.bundle.source_phases(f0[None], rand_ini=noise.rand_ini()[None])
        work = SegmentWork(
            start=start, end=end, pad=pad, n_frames=n, c=c, f0=f0.astype(np.float32), uv=uv, vol=vol,
            speaker=speaker, phase=phase[0], noise=noise, chunks=chunks, c_columns=columns,
        )
        if self.diffusion is not None:  # the vocoder's sine phases over the slice (float64), sliced per chunk
            vocoder = self.diffusion.spec.vocoder
            d_phase, _ = frame_start_phases(work.f0[None], hop, source_sr=vocoder.sampling_rate,
                                            harmonics=vocoder.harmonics)
            work.diffusion_phase = d_phase[0].astype(np.float32)
            work.diffusion_noise = NoiseField(o.seed, vocoder.num_mels, hop, vocoder.harmonics,
                                              stream=DIFFUSION_STREAM + stream)
        return work

    def _speaker_weights(self, first_sample: int, n: int, n_total: int) -> np.ndarray:
        weights = np.zeros((n, self.model.n_speakers), np.float32)
        if self.mix is None:
            weights[:, self.speaker_id] = 1.0
            return weights
        times = (first_sample + (np.arange(n) + 0.5) * self.hop) / max(n_total, 1)
        return self.mix.weights_at(times, self.model.n_speakers)

    def _predict_f0(self, c, f0, uv, speaker, vol, chunks: list[Chunk]) -> np.ndarray:
        out = np.empty_like(f0)
        for ch in chunks:
            sl = slice(ch.win_start, ch.win_end)
            pred = self.bundle.predict_f0(
                c[None, :, sl], f0[None, sl], uv[None, sl], speaker[None, sl],
                None if vol is None else vol[None, sl],
            )[0]
            out[ch.keep_start : ch.keep_end] = pred[ch.keep_start - ch.win_start : ch.keep_end - ch.win_start]
        return out

    # ------------------------------------------------------------------ render

    def render(self, files: list[PreparedFile]) -> list[np.ndarray]:
        """Run the generator over every chunk of `files` (equal-length chunks batched) -> audio [n_out] each.

        Each chunk's output is crossfaded straight into its file's output; a slice's inputs
        are released as soon as its last chunk is done, so `files` can be rendered only once.
        Raises the first file's error (FloatingPointError for non-finite output); see `render_each`.
        """
        results = self.render_each(files)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results

    def render_each(self, files: list[PreparedFile]) -> list[np.ndarray | FloatingPointError]:
        """As `render`, but a file whose output is not finite gets its FloatingPointError in its place
        (an error of a generator run itself still raises: it cannot be pinned on one file)."""
        outputs = [np.zeros(f.n_out, np.float32) for f in files]
        targets: dict[int, np.ndarray] = {}
        left: dict[int, int] = {}
        jobs: dict[int, list[tuple[SegmentWork, Chunk]]] = {}
        for f, out in zip(files, outputs):
            for seg in f.segments:
                if seg.c is None:
                    raise ValueError("this prepared file was already rendered (its slices were released); prepare it again")
                targets[id(seg)], left[id(seg)] = out, len(seg.chunks)
                for ch in seg.chunks:
                    jobs.setdefault(ch.length, []).append((seg, ch))
        for length, items in jobs.items():
            per_batch = self._batch_capacity(length)
            for i in range(0, len(items), per_batch):
                batch = items[i : i + per_batch]
                audio = self._run_batch(batch, length)
                for b, (seg, ch) in enumerate(batch):
                    self._place(targets[id(seg)], seg, ch, audio[b, 0])
                    left[id(seg)] -= 1
                    if left[id(seg)] == 0:
                        seg.release()
                del audio
                release_free_heap()
        results: list[np.ndarray | FloatingPointError] = []
        for f, out in zip(files, outputs):
            try:
                results.append(self._finish(f, out))
            except FloatingPointError as e:
                results.append(e)
        return results

    def _batch_capacity(self, length: int) -> int:
        """Chunks of `length` frames per generator run: `batch_size`, fewer when their windows together would
        exceed `batch_seconds` of audio (always at least one)."""
        budget = int(self.options.batch_seconds * self.sr)
        return max(1, min(self.options.batch_size, budget // (length * self.hop)))

    def _buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A C-contiguous float32 scratch array of `shape`: a view of one flat buffer per name, kept at the
        largest size asked for so far (bounded by the batch budget), so no per-shape copies accumulate."""
        size = math.prod(shape)
        flat = self._buffers.get(name)
        if flat is None or flat.size < size:
            flat = self._buffers[name] = np.empty(size, np.float32)
        return flat[:size].reshape(shape)

    def _place(self, out: np.ndarray, seg: SegmentWork, ch: Chunk, piece: np.ndarray) -> None:
        """Crossfade one chunk window's audio `piece` into the file output `out`, clipped to the slice's own
        samples [seg.start, min(seg.end, len(out))) (its padding is dropped, as the slice's neighbours own it).

        The weights are those of `svc_runtime.signal.slicer.stitch` over the slice's [n_frames * hop] samples;
        every output sample receives at most two weighted pieces, added to zero, so the sum does not depend on
        the order the chunks are rendered in."""
        hop, n_seg = self.hop, seg.n_frames * self.hop
        piece_start, keep_start, keep_end = ch.win_start * hop, ch.keep_start * hop, ch.keep_end * hop
        fade, half = self.fade, self.fade // 2
        lo = keep_start - half if keep_start > 0 and fade > 0 else keep_start
        hi = keep_end + (fade - half) if keep_end < n_seg and fade > 0 else keep_end
        lo, hi = max(lo, 0), min(hi, n_seg)
        if lo < piece_start or hi > piece_start + piece.shape[-1]:
            raise ValueError(f"piece covers [{piece_start}, {piece_start + piece.shape[-1]}) but the crossfade "
                             f"needs [{lo}, {hi})")
        own_lo, own_hi = seg.pad, seg.pad + min(seg.end, out.shape[0]) - seg.start
        a, z = max(lo, own_lo), min(hi, own_hi)
        if a >= z:
            return
        part = piece[a - piece_start : z - piece_start].astype(np.float32, copy=True)
        if fade > 0:
            ramp = crossfade_weights(fade)
            if keep_start > 0:
                r = keep_start - half
                s0, s1 = max(r, a), min(r + fade, z)
                part[s0 - a : s1 - a] *= ramp[s0 - r : s1 - r]
            if keep_end < n_seg:
                r = keep_end - half
                s0, s1 = max(r, a), min(r + fade, z)
                part[s0 - a : s1 - a] *= 1.0 - ramp[s0 - r : s1 - r]
        shift = seg.start - seg.pad
        out[a + shift : z + shift] += part

    def _run_batch(self, items: list[tuple[SegmentWork, Chunk]], length: int) -> np.ndarray:
        """The generator (and diffusion / enhancer) over a batch of equal-length chunk windows -> [B, 1, length*hop]."""
        m, hop, B = self.model, self.hop, len(items)
        c = self._buffer("c", (B, m.ssl_dim, length))
        f0 = self._buffer("f0", (B, length))
        uv = self._buffer("uv", (B, length))
        spk = self._buffer("spk", (B, length, m.n_speakers))
        phase = self._buffer("phase", (B, length, m.n_harmonics))
        prior = self._buffer("prior", (B, m.inter_channels, length))
        sine = self._buffer("sine", (B, length * hop, m.n_harmonics))
        o = self.options
        vol = self._buffer("vol", (B, length)) if m.vol_embedding or o.only_diffusion else None
        for b, (seg, ch) in enumerate(items):
            sl = slice(ch.win_start, ch.win_end)
            seg.units(sl, out=c[b])
            f0[b] = seg.f0[sl]
            uv[b] = seg.uv[sl]
            spk[b] = seg.speaker[sl]
            phase[b] = seg.phase[sl]
            seg.noise.prior(ch.win_start, ch.win_end, out=prior[b])
            seg.noise.sine(ch.win_start, ch.win_end, out=sine[b])
            if vol is not None:
                vol[b] = seg.vol[sl]
        if o.only_diffusion:
            audio = self._diffuse(items, c, f0, vol, spk, length, start=None)
        else:
            audio = self.bundle.synthesize(
                c, f0, uv, spk, phase=phase, prior=prior, sine=sine, noise_scale=o.noise_scale, vol=vol
            )
            if self.diffusion is not None:
                vol_d = vol if m.vol_embedding else volume_envelope(audio[:, 0], hop)
                audio = self._diffuse(items, c, f0, vol_d, spk, length, start=audio)
        if self.enhancer is not None:
            audio = np.stack([self._enhance(audio[b, 0], f0[b], seg, ch) for b, (seg, ch) in enumerate(items)])[:, None]
        return audio

    def _diffuse(self, items, c, f0, vol, spk, length: int, start: np.ndarray | None) -> np.ndarray:
        """Shallow diffusion of the generator's audio `start` [B, 1, L*hop] (None: only diffusion, from noise)
        for a batch of chunk windows; the diffusion noise and the vocoder's sine phases come from each slice's
        own field and float64 phase track, so overlapping windows see the same values."""
        o, hop, B = self.options, self.hop, len(items)
        vocoder = self.diffusion.spec.vocoder
        noise = self._buffer("d_noise", (B, 1, vocoder.num_mels, length))
        sine = self._buffer("d_sine", (B, length * hop, vocoder.harmonics))
        phase = self._buffer("d_phase", (B, length, vocoder.harmonics))
        for b, (seg, ch) in enumerate(items):
            seg.diffusion_noise.prior(ch.win_start, ch.win_end, out=noise[b, 0])
            seg.diffusion_noise.sine(ch.win_start, ch.win_end, out=sine[b])
            phase[b] = seg.diffusion_phase[ch.win_start : ch.win_end]
        speaker = np.ascontiguousarray(spk @ self.diffusion_speakers)
        if start is None:
            mel = self.diffusion.render_mel(c, f0, vol, None, None, None, o.diffusion_method, o.diffusion_speedup,
                                            noise, speaker=speaker)
            return self.diffusion.vocoder(mel, f0, phase=phase, sine_noise=sine)
        return self.diffusion.shallow(
            start, c, f0, vol, k_step=o.k_step, method=o.diffusion_method, speedup=o.diffusion_speedup,
            noise=noise, sine_noise=sine, speaker=speaker, phase=phase,
        )

    def _enhance(self, audio: np.ndarray, f0: np.ndarray, seg: SegmentWork, ch: Chunk) -> np.ndarray:
        """One chunk window re-synthesised by the NSF-HiFiGAN vocoder (seeded per slice and window)."""
        seed = np.random.SeedSequence([self.options.seed & 0xFFFFFFFF, seg.noise.stream, ch.win_start])
        return self.enhancer.enhance(audio, self.sr, f0, self.hop, adaptive_key=self.options.enhancer_adaptive_key,
                                     seed=int(seed.generate_state(1)[0]))

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
