"""int8 copies of exported graphs for ONNX Runtime's CPU provider (AMX / VNNI int8 kernels).

Generator: static quantization of its convolutions (QOperator format: QLinearConv; uint8
activations with ranges calibrated on real features, int8 weights per output channel).
Strided ConvTransposes (the upsamplers) are first rewritten as ordinary convolutions
(`svc_export.conv_transpose`, polyphase) so they are quantized too. Kept fp32: the NSF source
(`/m_source/`), the f0 -> coarse-bin mapping, the last convolution (`conv_post`, whose output
is the waveform), the F0 decoder, and every LeakyReLU and residual sum between the
convolutions.

Why the activations between convolutions stay fp32 (standard so-vits-svc 4.1 size, random
weights, the converter graph on the calibration phrase, 2 threads): quantizing the decoder's
LeakyReLUs and sums too (one int8 chain per stage, no Quantize / Dequantize between layers) was
2.12x faster than fp32 at 39.0 dB SNR; convolutions alone are 1.82x at 45.9 dB. Which other
parts stay fp32 hardly matters (each of the first stage, the flow and prior, the noise
convolutions, the speech encoder's MatMuls: within 0.05 dB; the last upsampling stage: +0.7 dB).
The quality bar is 40 dB, so only the convolutions are quantized.
Dynamic quantization (ConvInteger) of the convolutions is 3x slower than fp32 and fp16
is slower on the CPU; neither is used.

Speech encoder: dynamic quantization of its MatMuls (weights int8 per tensor,
activations quantized per run); the convolutional front end on raw audio stays fp32.

Calibration features are computed the way the runtime computes them: units from the
bundle's own fp32 speech-encoder graph (random units when the bundle has none), F0 from
Praat (`pm`) on the calibration audio, seeded noise and NSF phases. The default
calibration audio is a synthetic sung phrase (`synthetic_phrase`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from svc_export.conv_transpose import conv_transpose_as_conv
from svc_export.graph_files import data_file_of, entry_files, remove_graph, resave_graph, save_graph
from svc_runtime.audio.decode import decode_audio
from svc_runtime.audio.resample import resample
from svc_runtime.bundle.manifest import GraphEntry, ModelInfo, ParityRecord
from svc_runtime.signal.f0 import interpolate_unvoiced
from svc_runtime.signal.nsf_phase import frame_start_phases, phase_to_limbs
from svc_runtime.signal.quality import snr_db
from svc_runtime.signal.units import align_units
from svc_runtime.signal.volume import volume_envelope

GENERATOR_FP32_SCOPES = ("/m_source/", "/coarse_pitch/", "/conv_post/", "/f0_decoder/")
"""Generator modules kept fp32 in the int8 graph (NSF source, coarse pitch bins, the
waveform-producing last conv, the F0 decoder)."""
ENCODER_FP32_SCOPES = ("/feature_extractor/",)
"""Speech-encoder modules kept fp32 (the conv stack on raw audio)."""

MIN_GENERATOR_SNR_DB = 30.0
"""An int8 generator whose audio is less than this far (dB) above its error against the
fp32 graph on the calibration features is refused: 30 dB is an error amplitude of 3 %
of the signal, about 9 dB worse than the standard size measures (39 dB), so a model whose
activations quantize much worse than usual is caught, not shipped."""
MIN_UNIT_COSINE = 0.98
"""Lowest mean per-frame cosine similarity of int8 units to fp32 units accepted."""

CALIBRATION_CHUNK_SECONDS = 1.0
"""Length of each calibration run of the generator (its intermediate tensors are all kept)."""
MAX_CALIBRATION_CHUNKS = 6
SYNTHETIC_SECONDS = 4.0
NOISE_SCALE = 0.35
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


class Int8QualityError(ValueError):
    """An int8 graph is too far from its fp32 graph (numbers in the message)."""


@dataclass(frozen=True)
class Int8Report:
    """How far an int8 graph is from its fp32 graph on the calibration inputs.

    snr_db: 10 log10(sum ref^2 / sum err^2) over all outputs; max_abs: largest error;
    cosine: mean per-frame cosine similarity (speech encoder; None for the generator);
    length: frames (generator) or 16 kHz samples (encoder) compared; quantized: nodes
    quantized; calibration: where the calibration inputs came from.
    """

    graph: str
    output: str
    snr_db: float
    max_abs: float
    rms_reference: float
    cosine: float | None
    length: int
    quantized: int
    calibration: str


@dataclass(frozen=True)
class GeneratorShape:
    """What calibration needs to know about the generator (from the manifest's `model`)."""

    sampling_rate: int
    hop_length: int
    ssl_dim: int
    inter_channels: int
    n_speakers: int
    n_harmonics: int
    nsf_source_sampling_rate: int
    unit_interpolate_mode: str
    vol_embedding: bool


# --------------------------------------------------------------------------- calibration audio


def synthetic_phrase(sample_rate: int, seconds: float = SYNTHETIC_SECONDS, seed: int = 0) -> np.ndarray:
    """A sung phrase (notes with vibrato over a harmonic source, two pitch ranges), float32 [N].

    Same recipe as scripts/synthesize_voices.py: notes on a major scale around 196 and
    247 Hz, 5.5 Hz vibrato, spectral tilt 1/h, a short pause between the halves.
    """
    rng = np.random.default_rng(seed)
    half = int(seconds * sample_rate / 2)
    parts = []
    for base in (196.0, 246.9):
        t = np.arange(half) / sample_rate
        notes = base * 2 ** (rng.choice([0, 2, 4, 5, 7, 9], size=4) / 12)
        f0 = np.repeat(notes, -(-half // 4))[:half] * 2 ** (0.3 / 12 * np.sin(2 * np.pi * 5.5 * t))
        phase = 2 * np.pi * np.cumsum(f0) / sample_rate
        wave = sum(np.sin(h * phase) / h for h in range(1, 30) if h * f0.max() < min(16000, sample_rate / 2))
        envelope = np.clip(np.minimum(t, t[-1] - t) * 8, 0, 1)
        parts.append(0.25 * wave * envelope / np.abs(wave).max() + 0.001 * rng.standard_normal(half))
        parts.append(np.zeros(sample_rate // 5))
    return np.concatenate(parts).astype(np.float32)


def calibration_audio(path: Path | None, sample_rate: int) -> tuple[list[np.ndarray], str]:
    """Calibration clips at `sample_rate` ([N] float32 each) and a description of their origin.

    path: an audio file, a folder (searched recursively for audio files), or None for the
    synthetic phrase.
    """
    if path is None:
        return [synthetic_phrase(sample_rate)], "synthetic sung phrase"
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
        if not files:
            raise ValueError(f"--int8-calibration {path}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in the folder")
    elif path.is_file():
        files = [path]
    else:
        raise ValueError(f"--int8-calibration {path}: no such file or folder")
    clips, seconds = [], 0.0
    for file in files:
        decoded = decode_audio(file)
        audio = resample(decoded.samples, decoded.sample_rate, sample_rate)
        clips.append(np.asarray(audio, dtype=np.float32))
        seconds += audio.size / sample_rate
        if seconds >= CALIBRATION_CHUNK_SECONDS * MAX_CALIBRATION_CHUNKS:
            break
    return clips, f"{len(clips)} file(s) from {path}"


# --------------------------------------------------------------------------- generator features


def _f0_on_frames(audio: np.ndarray, sample_rate: int, hop: int, n_frames: int) -> np.ndarray:
    """Praat (pm) F0 of `audio` on the generator's frame grid: [n_frames] Hz, 0 = unvoiced."""
    from svc_runtime.pitch.classic import pm

    times, f0 = pm(audio, sample_rate, frame_period_s=hop / sample_rate)
    if f0.size == 0:
        return np.zeros(n_frames, dtype=np.float32)
    grid = np.arange(n_frames) * hop / sample_rate
    index = np.clip(np.searchsorted(times, grid), 0, f0.size - 1)
    return f0[index].astype(np.float32)


def _units_on_frames(
    audio: np.ndarray, shape: GeneratorShape, n_frames: int, encoder: ort.InferenceSession | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Units [ssl_dim, n_frames]: the fp32 speech encoder's when given, else standard normal."""
    if encoder is None:
        return rng.standard_normal((shape.ssl_dim, n_frames), dtype=np.float32)
    wav16k = resample(audio, shape.sampling_rate, 16000).astype(np.float32)
    units = encoder.run(None, {"wav": wav16k[None]})[0][0]
    mode = "left" if shape.unit_interpolate_mode == "left" else "nearest"
    return align_units(units, n_frames, mode).astype(np.float32)


def generator_calibration_feeds(
    clips: list[np.ndarray], shape: GeneratorShape, encoder_graph: Path | None, seed: int = 0,
) -> list[dict[str, np.ndarray]]:
    """Generator inputs (batch 1) for chunks of `CALIBRATION_CHUNK_SECONDS` cut from `clips`.

    Units and F0 are computed on each whole clip, then cut; at most `MAX_CALIBRATION_CHUNKS`.
    """
    rng = np.random.default_rng(seed)
    encoder = ort.InferenceSession(str(encoder_graph), providers=["CPUExecutionProvider"]) if encoder_graph else None
    hop, sr = shape.hop_length, shape.sampling_rate
    chunk = max(8, round(CALIBRATION_CHUNK_SECONDS * sr / hop))
    feeds = []
    for clip in clips:
        n_frames = clip.size // hop
        if n_frames < 8:
            continue
        f0_raw = _f0_on_frames(clip, sr, hop, n_frames)
        f0, uv = interpolate_unvoiced(f0_raw)
        if not uv.any():
            f0 = np.full(n_frames, 220.0, dtype=np.float32)  # no voice found: calibrate on a steady tone
        units = _units_on_frames(clip, shape, n_frames, encoder, rng)
        volume = volume_envelope(clip, hop)[:n_frames]
        for start in range(0, n_frames - 7, chunk):
            stop = min(start + chunk, n_frames)
            frames = stop - start
            speaker = np.zeros((1, frames, shape.n_speakers), dtype=np.float32)
            speaker[0, :, len(feeds) % shape.n_speakers] = 1.0
            rand_ini = rng.random((1, shape.n_harmonics))
            rand_ini[:, 0] = 0.0
            f0_chunk = f0[None, start:stop].astype(np.float32)
            phase, _ = frame_start_phases(f0_chunk, hop, source_sr=shape.nsf_source_sampling_rate,
                                          rand_ini=rand_ini, harmonics=shape.n_harmonics)
            feed = {
                "c": units[None, :, start:stop],
                "f0": f0_chunk,
                "uv": uv[None, start:stop].astype(np.float32),
                "speaker": speaker,
                "noise_prior": rng.standard_normal((1, shape.inter_channels, frames), dtype=np.float32),
                "noise_scale": np.array([NOISE_SCALE], dtype=np.float32),
                "phase": phase.astype(np.float32),
                "sine_noise": rng.standard_normal((1, frames * hop, shape.n_harmonics), dtype=np.float32),
            }
            if shape.vol_embedding:
                feed["vol"] = volume[None, start:stop].astype(np.float32)
            feeds.append(feed)
            if len(feeds) >= MAX_CALIBRATION_CHUNKS:
                return feeds
    if not feeds:
        raise ValueError(f"calibration audio is too short: needs at least {8 * hop} samples at {sr} Hz")
    return feeds


def conversion_calibration_feeds(
    clips: list[np.ndarray], shape: GeneratorShape, input_names: tuple[str, ...], encoder_graph: Path | None,
    seed: int = 0,
) -> list[dict[str, np.ndarray]]:
    """Inputs (batch 1) of a conversion graph (`converter`, `converter_f0` or `synthesis`) for windows of
    `CALIBRATION_CHUNK_SECONDS` cut from `clips`, built the way `svc_runtime.pipeline.convert` builds them."""
    from svc_runtime.pipeline.window import samples_at

    rng = np.random.default_rng(seed)
    encoder = _cpu_session(encoder_graph) if encoder_graph is not None and "units" in input_names else None
    hop, sr = shape.hop_length, shape.sampling_rate
    chunk = max(16, round(CALIBRATION_CHUNK_SECONDS * sr / hop))
    feeds = []
    for clip in clips:
        n_frames = clip.size // hop
        wav16k = resample(clip[: n_frames * hop], sr, 16000).astype(np.float32)
        f0_raw = _f0_on_frames(clip, sr, hop, n_frames)
        if not (f0_raw > 0).any():
            f0_raw = np.full(n_frames, 220.0, dtype=np.float32)  # no voice found: calibrate on a steady tone
        for start in range(0, n_frames - 15, chunk):
            stop = min(start + chunk, n_frames)
            frames = stop - start
            window16 = wav16k[samples_at(start, hop, sr) : samples_at(stop, hop, sr)]
            speaker = np.zeros((1, frames, shape.n_speakers), dtype=np.float32)
            speaker[0, :, len(feeds) % shape.n_speakers] = 1.0
            feed = {
                "wav16k": window16[None],
                "f0_in": f0_raw[None, start:stop],
                "speaker": speaker,
                "f0_scale": np.ones(1, np.float32),
                "noise_scale": np.array([NOISE_SCALE], dtype=np.float32),
                "noise_prior": rng.standard_normal((1, shape.inter_channels, frames), dtype=np.float32),
                "sine_noise": rng.standard_normal((1, frames * hop, shape.n_harmonics), dtype=np.float32),
                "phase_in": phase_to_limbs(rng.integers(0, 1 << 40, (1, shape.n_harmonics), dtype=np.int64)),
                "state_frame": np.array([frames], np.int64),
                "cluster_centres": np.zeros((1, shape.ssl_dim), np.float32),
                "cluster_ratio": np.zeros(1, np.float32),
                "decode_from": np.zeros(1, np.int64),
                "audio_in": clip[None, start * hop : stop * hop].astype(np.float32),
                "auto_f0": np.zeros(1, np.float32),
            }
            if "units" in input_names:
                feed["units"] = (encoder.run(None, {"wav": window16[None]})[0] if encoder is not None else
                                 rng.standard_normal((1, shape.ssl_dim, max(1, window16.size // 320)), dtype=np.float32))
            feeds.append({k: v for k, v in feed.items() if k in input_names})
            if len(feeds) >= MAX_CALIBRATION_CHUNKS:
                return feeds
    if not feeds:
        raise ValueError(f"calibration audio is too short: needs at least {16 * hop} samples at {sr} Hz")
    return feeds


# --------------------------------------------------------------------------- quantization


class _Feeds:
    """ONNX Runtime's CalibrationDataReader over a list of feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds = feeds
        self._items = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)

    def rewind(self) -> None:
        self._items = iter(self._feeds)


def _in_scopes(name: str, scopes: tuple[str, ...]) -> bool:
    return any(scope in name for scope in scopes)


def generator_nodes_to_quantize(model: onnx.ModelProto, fp32_scopes: tuple[str, ...] = GENERATOR_FP32_SCOPES) -> list[str]:
    """Names of the generator nodes to quantize: every Conv outside `fp32_scopes` (module docstring: why
    the LeakyReLUs and sums between them stay fp32)."""
    return [node.name for node in model.graph.node
            if node.op_type == "Conv" and not _in_scopes(node.name, fp32_scopes)]


def fold_initializer_identities(model: onnx.ModelProto) -> int:
    """Feed consumers of `Identity(initializer)` the initializer itself (shared weights of an
    unsimplified graph); the quantizer needs weights and biases as initializers. Returns the count."""
    inits = {t.name for t in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    alias = {n.output[0]: n.input[0] for n in model.graph.node
             if n.op_type == "Identity" and n.input[0] in inits and n.output[0] not in outputs}
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
    kept = [n for n in model.graph.node if not (n.op_type == "Identity" and n.output[0] in alias)]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return len(alias)


def fold_scalar_divisions(model: onnx.ModelProto) -> int:
    """Fold `Div(x, c) -> LeakyRelu -> Conv(s)` (HiFiGAN's multi-receptive-field average before
    the next upsampler / conv_post) into the convs' weights: lrelu(x / c) = lrelu(x) / c for c > 0
    and a conv is linear in its input, so W' = W / c gives the same sums. The int8 chain then
    runs on without a Dequantize -> Div -> Quantize round trip. Returns the divisions folded."""
    inits = {t.name: t for t in model.graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in model.graph.output}
    weight_uses = {name: len(consumers.get(name, [])) for name in inits}
    constants = {n.output[0]: onnx.numpy_helper.to_array(a.t) for n in model.graph.node if n.op_type == "Constant"
                 for a in n.attribute if a.name == "value"}  # unsimplified graphs hold them as nodes
    constants.update({name: onnx.numpy_helper.to_array(t) for name, t in inits.items()})
    folded = set()
    for node in model.graph.node:
        if node.op_type != "Div" or node.input[1] not in constants or node.output[0] in outputs:
            continue
        divisor = constants[node.input[1]]
        after = consumers.get(node.output[0], [])
        if divisor.size != 1 or not float(divisor.reshape(())) > 0 or len(after) != 1 or after[0].op_type != "LeakyRelu":
            continue
        relu = after[0]
        convs = consumers.get(relu.output[0], [])
        if relu.output[0] in outputs or not convs or any(
            c.op_type != "Conv" or c.input[1] not in inits or weight_uses[c.input[1]] != 1 for c in convs
        ):
            continue
        for conv in convs:
            weight = onnx.numpy_helper.to_array(inits[conv.input[1]])
            scaled = (weight / divisor.reshape(()).astype(weight.dtype)).astype(weight.dtype)
            inits[conv.input[1]].CopyFrom(onnx.numpy_helper.from_array(scaled, conv.input[1]))
        relu.input[0] = node.input[0]
        folded.add(id(node))
    kept = [n for n in model.graph.node if id(n) not in folded]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return len(folded)


def _prepared(src: Path, work: Path) -> Path:
    """A copy of `src` ready to quantize: shared weights as plain initializers, ConvTransposes
    rewritten as Conv (polyphase, `svc_export.conv_transpose`) so the upsamplers quantize too,
    the decoder's divisions by the number of resblocks folded into the next convs, and a conversion
    graph's automatic-F0 `If` flattened back into a `Where` (ONNX Runtime's calibration does not look
    into subgraphs; the int8 graph computes the predictor on every run)."""
    from svc_export.auto_f0_branch import branch_as_where

    model = onnx.load(str(src))
    branch_as_where(model)
    fold_initializer_identities(model)
    if any(node.op_type == "ConvTranspose" for node in model.graph.node):
        model, _ = conv_transpose_as_conv(model)
    fold_scalar_divisions(model)
    path = work / "prepared.onnx"
    save_graph(model, path, external=True if data_file_of(src) is not None else None)
    return path


def _cpu_session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # export-time checks; leave the other core to the caller
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def compare_generator(int8_graph: Path, fp32_graph: Path, feeds: list[dict[str, np.ndarray]], calibration: str,
                      quantized: int) -> Int8Report:
    """Audio SNR / max abs of `int8_graph` against `fp32_graph` over every feed."""
    fast, slow = _cpu_session(int8_graph), _cpu_session(fp32_graph)
    names = {i.name for i in slow.get_inputs()}
    got, want = [], []
    for feed in feeds:
        feed = {k: v for k, v in feed.items() if k in names}
        got.append(fast.run(["audio"], feed)[0].ravel())
        want.append(slow.run(["audio"], feed)[0].ravel())
    a, b = np.concatenate(got), np.concatenate(want)
    error = a.astype(np.float64) - b
    return Int8Report(
        graph=int8_graph.name, output="audio", snr_db=snr_db(b, a), max_abs=float(np.abs(error).max()),
        rms_reference=float(np.sqrt(np.mean(np.square(b, dtype=np.float64)))), cosine=None,
        length=sum(f["noise_prior"].shape[-1] for f in feeds), quantized=quantized, calibration=calibration,
    )


def quantize_generator(
    src: Path, dst: Path, feeds: list[dict[str, np.ndarray]], calibration: str = "given features",
    min_snr_db: float = MIN_GENERATOR_SNR_DB, within: str | None = None, dynamic_scope: str | None = None,
) -> Int8Report:
    """Write the int8 generator `dst` from fp32 graph `src`, calibrated on `feeds`; its report.

    Raises `Int8QualityError` (and removes `dst`) when the audio SNR against `src` on the
    feeds is below `min_snr_db`. Conversion graphs: `within` limits the static quantization to the
    generator's nodes (scope `/core/`: not the speech encoder's or pitch network's convolutions)
    and `dynamic_scope` names the speech encoder whose MatMuls are then quantized dynamically.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    src, dst = Path(src), Path(dst)
    external = data_file_of(src) is not None  # weights past 2 GiB (or a low --external-data-threshold)
    with tempfile.TemporaryDirectory(prefix="svc-int8-") as work:
        source = _prepared(src, Path(work))
        model = onnx.load(str(source), load_external_data=False)
        nodes = [n for n in generator_nodes_to_quantize(model) if within is None or within in n]
        if not nodes:  # an empty list would mean "every node" to ONNX Runtime's quantizer
            raise ValueError(f"{src.name}: no generator nodes to quantize (scope {within!r})")
        matmuls = [n.name for n in model.graph.node if dynamic_scope and n.op_type == "MatMul"
                   and dynamic_scope in n.name and not _in_scopes(n.name, ENCODER_FP32_SCOPES)]
        names = {i.name for i in model.graph.input}
        inputs = [{k: v for k, v in feed.items() if k in names} for feed in feeds]
        del model
        static_out = Path(work) / "static.onnx" if matmuls else dst
        quantize_static(
            str(source), str(static_out), _Feeds(inputs),
            quant_format=QuantFormat.QOperator,
            op_types_to_quantize=["Conv"],
            nodes_to_quantize=nodes,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"CalibTensorRangeSymmetric": False},
            use_external_data_format=external,
        )
        if matmuls:
            quantize_dynamic(str(static_out), str(dst), op_types_to_quantize=["MatMul"], per_channel=False,
                             weight_type=QuantType.QInt8, nodes_to_quantize=matmuls,
                             use_external_data_format=external)
        if external:
            resave_graph(dst)  # ONNX Runtime's layout -> ours: one file when int8 fits, else <name>.data
    report = compare_generator(dst, src, feeds, calibration, len(nodes) + len(matmuls))
    if not report.snr_db >= min_snr_db:
        remove_graph(dst)
        raise Int8QualityError(
            f"int8 generator is too far from fp32 on the calibration features ({calibration}): audio SNR "
            f"{report.snr_db:.1f} dB < {min_snr_db:g} dB (max abs {report.max_abs:.3g}); export without --int8, "
            "or calibrate on more representative audio with --int8-calibration PATH"
        )
    return report


def quantize_speech_encoder(
    src: Path, dst: Path, wavs16k: list[np.ndarray], calibration: str = "given audio",
    min_cosine: float = MIN_UNIT_COSINE,
) -> Int8Report:
    """Write the int8 speech encoder `dst` (dynamic MatMul quantization) from `src`; its report on `wavs16k`.

    wavs16k: [N] float32 clips at 16 kHz to compare units on. Raises `Int8QualityError`
    (and removes `dst`) when the mean per-frame cosine similarity is below `min_cosine`.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = Path(src), Path(dst)
    model = onnx.load(str(src), load_external_data=False)
    excluded = [n.name for n in model.graph.node if _in_scopes(n.name, ENCODER_FP32_SCOPES)]
    quantized = sum(1 for n in model.graph.node if n.op_type == "MatMul" and n.name not in excluded)
    del model
    external = data_file_of(src) is not None
    quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul"], per_channel=False,
                     weight_type=QuantType.QInt8, nodes_to_exclude=excluded, use_external_data_format=external)
    if external:
        resave_graph(dst)  # ONNX Runtime's layout -> ours: one file when int8 fits, else <name>.data
    fast, slow = _cpu_session(dst), _cpu_session(src)
    got, want = [], []
    for wav in wavs16k:
        feed = {"wav": np.asarray(wav, dtype=np.float32)[None]}
        got.append(fast.run(["units"], feed)[0][0])  # [dim, frames]
        want.append(slow.run(["units"], feed)[0][0])
    a, b = np.concatenate(got, axis=1).astype(np.float64), np.concatenate(want, axis=1).astype(np.float64)
    cosine = np.sum(a * b, axis=0) / np.maximum(np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0), 1e-12)
    report = Int8Report(
        graph=dst.name, output="units", snr_db=snr_db(b, a), max_abs=float(np.abs(a - b).max()),
        rms_reference=float(np.sqrt(np.mean(b**2))), cosine=float(cosine.mean()),
        length=sum(int(w.size) for w in wavs16k), quantized=quantized, calibration=calibration,
    )
    if not report.cosine >= min_cosine:
        remove_graph(dst)
        raise Int8QualityError(
            f"int8 speech encoder is too far from fp32 on {calibration}: mean per-frame cosine similarity "
            f"{report.cosine:.4f} < {min_cosine:g} (max abs {report.max_abs:.3g}); export without --int8"
        )
    return report


# --------------------------------------------------------------------------- bundle


INT8_TOLERANCE = {"audio": 0.05, "units": 0.5}
"""Max abs error bounds recorded with the int8 graphs' parity (the gates are the SNR and
cosine above; these catch a broken graph whose error concentrates in a few samples)."""


def add_int8_graphs(
    graphs: dict[str, GraphEntry], model: ModelInfo, stage_file, calibration: Path | None,
) -> tuple[dict[str, GraphEntry], list[Int8Report]]:
    """int8 copies of the bundle's fp32 generator and speech encoder, written beside them.

    graphs: the bundle's fp32 graph entries so far; model: the manifest's model section;
    stage_file: name -> path in the bundle being written. Returns the new entries
    (`generator_int8`, `speech_encoder_int8`, precision "int8") and their reports.
    Raises `Int8QualityError` when a graph fails its quality gate.
    """
    shape = GeneratorShape(
        sampling_rate=model.sampling_rate, hop_length=model.hop_length, ssl_dim=model.ssl_dim,
        inter_channels=model.inter_channels, n_speakers=model.n_speakers, n_harmonics=model.n_harmonics,
        nsf_source_sampling_rate=model.nsf_source_sampling_rate, unit_interpolate_mode=model.unit_interpolate_mode,
        vol_embedding=model.vol_embedding,
    )
    clips, origin = calibration_audio(calibration, shape.sampling_rate)
    encoder = graphs.get("speech_encoder")
    entries: dict[str, GraphEntry] = {}
    reports = []
    if encoder is not None:
        wavs = [resample(clip, shape.sampling_rate, 16000).astype(np.float32) for clip in clips]
        dst = stage_file("speech_encoder.int8.onnx")
        report = quantize_speech_encoder(stage_file(encoder.file), dst, wavs, origin)
        entries["speech_encoder_int8"] = _entry(encoder, dst, report)
        reports.append(report)
    for role in ("converter", "converter_f0", "synthesis"):  # the graphs the runtime converts with
        graph = graphs.get(role)
        if graph is None:
            continue
        feeds = conversion_calibration_feeds(clips, shape, graph.input_names(),
                                             stage_file(encoder.file) if encoder else None)
        dst = stage_file(f"{role}.int8.onnx")
        scope = "/encoder/" if role != "synthesis" else None
        try:  # generator int8 + speech encoder dynamic int8; the generator alone when that misses the gate
            report = quantize_generator(stage_file(graph.file), dst, feeds, origin, within="/core/",
                                        dynamic_scope=scope)
        except Int8QualityError:
            if scope is None:
                raise
            report = quantize_generator(stage_file(graph.file), dst, feeds, f"{origin}; encoder kept fp32",
                                        within="/core/")
        entries[f"{role}_int8"] = _entry(graph, dst, report)
        reports.append(report)
    generator = graphs["generator"]
    units = f"{origin}; units {'from the fp32 speech encoder' if encoder else 'random (no speech encoder graph)'}"
    feeds = generator_calibration_feeds(clips, shape, stage_file(encoder.file) if encoder else None)
    dst = stage_file("generator.int8.onnx")
    report = quantize_generator(stage_file(generator.file), dst, feeds, units)
    entries["generator_int8"] = _entry(generator, dst, report)
    reports.insert(0, report)
    return entries, reports


def _entry(fp32: GraphEntry, path: Path, report: Int8Report) -> GraphEntry:
    record = ParityRecord(report.output, report.length, report.max_abs, INT8_TOLERANCE[report.output],
                          f"{fp32.file} (fp32 graph)", snr_db=round(report.snr_db, 2))
    return replace(fp32, **entry_files(path), precision="int8", parity=(record,))


def add_int8_to_bundle(bundle_dir: Path, calibration: Path | None = None) -> list[Int8Report]:
    """Add (or replace) the int8 graphs of an existing bundle folder in place; their reports.

    For bundles exported without `--int8` (the same graphs `svc-export --int8` writes). The
    int8 files are written beside the target name and renamed in, then `manifest.json` is
    replaced atomically; a failed quality gate leaves the bundle as it was.
    """
    from svc_runtime.atomic import atomic_output
    from svc_runtime.bundle.manifest import Manifest

    bundle_dir = Path(bundle_dir)
    manifest = Manifest.read(bundle_dir)
    fp32 = {name: g for name, g in manifest.graphs.items() if g.precision != "int8"}
    with tempfile.TemporaryDirectory(prefix=".int8-", dir=bundle_dir) as work:
        staged = Path(work)
        files = {name: bundle_dir / g.file for name, g in fp32.items()}
        entries, reports = add_int8_graphs(
            fp32, manifest.model, lambda name: files.get(_graph_of(fp32, name), staged / name), calibration,
        )
        for entry in entries.values():
            if entry.data_file is not None:
                (staged / entry.data_file).replace(bundle_dir / entry.data_file)
            (staged / entry.file).replace(bundle_dir / entry.file)
    with atomic_output(bundle_dir / "manifest.json", text=True) as handle:
        handle.write(replace(manifest, graphs={**fp32, **entries}).to_json())
    return reports


def _graph_of(graphs: dict[str, GraphEntry], file: str) -> str | None:
    """Name of the graph stored in `file`, None when no graph is."""
    return next((name for name, g in graphs.items() if g.file == file), None)
