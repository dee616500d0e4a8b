"""What each bundle graph is: its module, named inputs/outputs with dynamic axes,
example inputs for tracing and parity, parity lengths and tolerances.

Parity inputs are realistic in range (an f0 glide with an unvoiced gap, standard
normal units and noise, a random speaker mix, phases from the runtime's float64
phase accumulator) and use batch 2 on the second length to prove the batch axis.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from svc_export.graphs import DecoderHalves, F0PredictorGraph, GeneratorGraph, WaveformGraph
from svc_export.onnx_export import GraphPlan, TensorSpecSketch
from svc_runtime.pipeline.window import samples_at
from svc_runtime.signal.nsf_phase import NSF_HARMONICS, PHASE_LIMBS, frame_start_phases, phase_to_limbs

GENERATOR_LENGTHS = (40, 100, 7)
"""Frames of the generator parity runs (the first is the tracing example; the second, batch 1, is raised to
where `DecoderHalves` splits the decoder, see `split_parity_lengths`)."""
WAVEFORM_LENGTHS = (16000, 21920, 6400)
"""Samples (16 kHz) of the encoder / pitch parity runs."""

AUDIO_TOLERANCE = 1e-3
"""fp32 graph vs torch, audio in [-1, 1]."""
F0_TOLERANCE_HZ = 1e-2
UNITS_TOLERANCE = 1e-3
SALIENCE_TOLERANCE = 1e-4
"""Salience within 1e-4 keeps every voicing and argmax decision of the pitch fixtures."""

FP16_TOLERANCE = {"audio": 5e-2, "units": 5e-2, "salience": 1e-2, "f0": 1.0, "uv": 0.0, "phase_out": 0.5 * 2**40}
"""fp16 graph vs fp32 graph (both in ONNX Runtime); half precision keeps ~3 decimal digits. Conversion
graphs: F0 within 1 Hz and no voicing flips; the carried phase follows the F0 and is not gated (half a cycle)."""

FP32_SCOPES = {
    "generator": ("/m_source/", "/coarse_pitch/"),
    "speech_encoder": ("/feature_extractor/",),
    "pitch": ("/mel/",),
    "crepe": ("/framing/",),
    "converter": ("/m_source/", "/coarse_pitch/", "/feature_extractor/", "/mel/", "/decoder/", "/f0_track/",
                  "/phase_track/", "/f0_decoder/"),
}
"""Module scopes kept in fp32 in fp16 graphs: the NSF source (phase and sines), the
f0 -> coarse-bin mapping, the encoder's first conv stack on raw audio, the pitch networks' STFT/mel front end."""


def split_parity_lengths(lengths: tuple[int, ...], decode: DecoderHalves) -> tuple[int, ...]:
    """`lengths` with the second run (batch 1) long enough that `decode` runs the decoder's later stages as two
    halves whatever the model's halo (16 frames at the standard size); the batch-of-two run stays whole."""
    return (lengths[0], max(lengths[1], decode.min_frames + 1), *lengths[2:])


def _batch_for(seed: int) -> int:
    return 2 if seed == 2 else 1


def _f0_track(batch: int, frames: int, generator: torch.Generator) -> torch.Tensor:
    """Glide 110..880 Hz with vibrato; about a fifth of the frames unvoiced (0)."""
    t = torch.arange(frames, dtype=torch.float32) / max(frames - 1, 1)
    base = 110.0 * torch.pow(2.0, 3.0 * t) * (1 + 0.03 * torch.sin(2 * math.pi * 5 * t))
    f0 = base.repeat(batch, 1) * (1 + 0.05 * torch.rand(batch, 1, generator=generator))
    start = frames // 3
    f0[:, start:start + max(1, frames // 5)] = 0.0
    return f0


def generator_plan(synthesizer: nn.Module, n_speakers: int) -> GraphPlan:
    model = synthesizer
    inter, hop, ssl = model.inter_channels, model.hop, model.config.ssl_dim
    with_vol = bool(model.vol_embedding)
    inputs = [
        TensorSpecSketch("c", "float32", ("batch", ssl, "frames")),
        TensorSpecSketch("f0", "float32", ("batch", "frames")),
        TensorSpecSketch("uv", "float32", ("batch", "frames")),
        TensorSpecSketch("speaker", "float32", ("batch", "frames", n_speakers)),
        TensorSpecSketch("noise_prior", "float32", ("batch", inter, "frames")),
        TensorSpecSketch("noise_scale", "float32", (1,)),
        TensorSpecSketch("phase", "float32", ("batch", "frames", NSF_HARMONICS)),
        TensorSpecSketch("sine_noise", "float32", ("batch", "samples", NSF_HARMONICS)),
    ]
    if with_vol:
        inputs.append(TensorSpecSketch("vol", "float32", ("batch", "frames")))

    def make_inputs(frames: int, seed: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(1000 + seed)
        batch = _batch_for(seed)
        f0 = _f0_track(batch, frames, g)
        rand_ini = torch.rand(batch, NSF_HARMONICS, generator=g)
        phase, _ = frame_start_phases(f0.numpy(), hop, source_sr=model.dec.m_source.source_sr, rand_ini=rand_ini.numpy())
        values = {
            "c": torch.randn(batch, ssl, frames, generator=g),
            "f0": f0,
            "uv": (f0 > 0).float(),
            "speaker": torch.softmax(2 * torch.randn(batch, frames, n_speakers, generator=g), dim=-1),
            "noise_prior": torch.randn(batch, inter, frames, generator=g),
            "noise_scale": torch.tensor([0.35 + 0.1 * seed], dtype=torch.float32),
            "phase": torch.from_numpy(phase.astype(np.float32)),
            "sine_noise": torch.randn(batch, frames * hop, NSF_HARMONICS, generator=g),
        }
        if with_vol:
            values["vol"] = 0.5 * torch.rand(batch, frames, generator=g)
        return values

    graph = GeneratorGraph(model).eval()
    return GraphPlan(
        name="generator",
        role="generator",
        module=graph,
        inputs=tuple(inputs),
        outputs=(TensorSpecSketch("audio", "float32", ("batch", 1, "samples")),),
        make_inputs=make_inputs,
        lengths=split_parity_lengths(GENERATOR_LENGTHS, graph.decode),
        tolerance={"audio": AUDIO_TOLERANCE},
        meta={"fp32_scopes": FP32_SCOPES["generator"], "hop": hop},
    )


def f0_predictor_plan(synthesizer: nn.Module, n_speakers: int) -> GraphPlan:
    generator = generator_plan(synthesizer, n_speakers)
    names = ("c", "f0", "uv", "speaker", "vol")
    inputs = tuple(s for s in generator.inputs if s.name in names)

    def make_inputs(frames: int, seed: int) -> dict[str, torch.Tensor]:
        values = generator.make_inputs(frames, seed)
        return {s.name: values[s.name] for s in inputs}

    return GraphPlan(
        name="f0_predictor",
        role="f0_predictor",
        module=F0PredictorGraph(synthesizer).eval(),
        inputs=inputs,
        outputs=(TensorSpecSketch("f0_pred", "float32", ("batch", "frames")),),
        make_inputs=make_inputs,
        lengths=GENERATOR_LENGTHS,
        tolerance={"f0_pred": F0_TOLERANCE_HZ},
        meta={},
    )


def _waveform(batch: int, samples: int, generator: torch.Generator) -> torch.Tensor:
    """A harmonic tone gliding 120..480 Hz with noise, peak about 0.5, at 16 kHz."""
    t = torch.arange(samples, dtype=torch.float64) / 16000.0
    f = 120.0 * torch.pow(2.0, 2.0 * t / max(t[-1].item(), 1e-3))
    phase = 2 * math.pi * torch.cumsum(f, 0) / 16000.0
    tone = sum(torch.sin(k * phase) / k for k in range(1, 6)).float() * 0.2
    return tone.repeat(batch, 1) + 0.01 * torch.randn(batch, samples, generator=generator)


def waveform_plan(
    name: str, role: str, module: nn.Module, output: str, output_shape: tuple[int | str, ...], tolerance: float,
    lengths: tuple[int, ...] = WAVEFORM_LENGTHS,
    fp32_scopes: tuple[str, ...] | None = None,
) -> GraphPlan:
    """A graph on a 16 kHz waveform `wav` [batch, samples]; fp32_scopes default: the role's."""

    def make_inputs(samples: int, seed: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(2000 + seed)
        return {"wav": _waveform(_batch_for(seed), samples, g)}

    return GraphPlan(
        name=name,
        role=role,
        module=WaveformGraph(module).eval(),
        inputs=(TensorSpecSketch("wav", "float32", ("batch", "samples")),),
        outputs=(TensorSpecSketch(output, "float32", output_shape),),
        make_inputs=make_inputs,
        lengths=lengths,
        tolerance={output: tolerance},
        meta={"fp32_scopes": fp32_scopes or FP32_SCOPES[role], "hop": 0},
    )


def speech_encoder_plan(module: nn.Module, dim: int) -> GraphPlan:
    return waveform_plan("speech_encoder", "speech_encoder", module, "units", ("batch", dim, "frames"), UNITS_TOLERANCE)


def pitch_plan(module: nn.Module, n_bins: int, fp32_scopes: tuple[str, ...] | None = None) -> GraphPlan:
    return waveform_plan("pitch", "pitch", module, "salience", ("batch", "frames", n_bins), SALIENCE_TOLERANCE,
                         fp32_scopes=fp32_scopes)


# --------------------------------------------------------------------------- the conversion graphs

CONVERTER_LENGTHS = (40, 100, 16)
"""Frames of the conversion graphs' parity runs (16 = the runtime's shortest window; the second raised as
`GENERATOR_LENGTHS`')."""
PHASE_TOLERANCE = 1e-3
"""Carried phase (cycles) of the conversion graphs vs torch: the same integer sums where F0 agrees; a
predicted F0 differs by ~1e-4 Hz between the two (measured 1.8e-4 cycles after 16 frames)."""


def converter_plans(
    synthesizer: nn.Module, n_speakers: int, unit_mode: str, sampling_rate: int,
    encoder: nn.Module | None = None, pitch: nn.Module | None = None,
) -> list[GraphPlan]:
    """Plans of the `synthesis` graph, and of `converter_f0` (with an encoder) and `converter` (with an
    encoder and a `PitchTrack`): the inputs docs/bundle.md describes, in the order the modules take them."""
    from svc_export.converter_graph import (
        PHASE_ONE,
        ConverterF0Graph,
        ConverterGraph,
        SynthesisCore,
        SynthesisGraph,
    )

    model = synthesizer
    inter, hop, ssl = model.inter_channels, model.hop, model.config.ssl_dim
    with_audio, with_auto_f0 = bool(model.vol_embedding), bool(model.use_automatic_f0_prediction)
    core = SynthesisCore(model, unit_mode).eval()
    controls = [
        TensorSpecSketch("speaker", "float32", ("batch", "frames", n_speakers)),
        TensorSpecSketch("f0_scale", "float32", ("batch",)),
        TensorSpecSketch("noise_scale", "float32", (1,)),
        TensorSpecSketch("noise_prior", "float32", ("batch", inter, "frames")),
        TensorSpecSketch("sine_noise", "float32", ("batch", "samples", NSF_HARMONICS)),
        TensorSpecSketch("phase_in", "int32", ("batch", PHASE_LIMBS, NSF_HARMONICS)),
        TensorSpecSketch("state_frame", "int64", ("batch",)),
        TensorSpecSketch("cluster_centres", "float32", ("centres", ssl)),
        TensorSpecSketch("cluster_ratio", "float32", (1,)),
        TensorSpecSketch("decode_from", "int64", (1,)),
    ]
    if with_audio:  # model-rate audio for the volume input (`audio` is the output's name)
        controls.append(TensorSpecSketch("audio_in", "float32", ("batch", "samples")))
    if with_auto_f0:
        controls.append(TensorSpecSketch("auto_f0", "float32", (1,)))
    outputs = (
        TensorSpecSketch("audio", "float32", ("batch", 1, "decoded_samples")),
        TensorSpecSketch("f0", "float32", ("batch", "frames")),
        TensorSpecSketch("uv", "float32", ("batch", "frames")),
        TensorSpecSketch("phase_out", "int32", ("batch", PHASE_LIMBS, NSF_HARMONICS)),
    )
    tolerance = {"audio": AUDIO_TOLERANCE, "f0": F0_TOLERANCE_HZ, "uv": 0.0, "phase_out": PHASE_TOLERANCE * PHASE_ONE}

    def make_inputs(frames: int, seed: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(3000 + seed)
        batch = _batch_for(seed)
        n16 = samples_at(frames, hop, sampling_rate)
        values = {
            "wav16k": _waveform(batch, n16, g),
            "units": torch.randn(batch, ssl, max(1, n16 // 320), generator=g),
            "f0_in": _f0_track(batch, frames, g),
            "speaker": torch.softmax(2 * torch.randn(batch, frames, n_speakers, generator=g), dim=-1),
            "f0_scale": torch.full((batch,), 2.0 ** (seed / 12.0), dtype=torch.float32),
            "noise_scale": torch.tensor([0.35 + 0.1 * seed], dtype=torch.float32),
            "noise_prior": torch.randn(batch, inter, frames, generator=g),
            "sine_noise": torch.randn(batch, frames * hop, NSF_HARMONICS, generator=g),
            "phase_in": torch.from_numpy(
                phase_to_limbs(torch.randint(0, PHASE_ONE, (batch, NSF_HARMONICS), generator=g).numpy())),
            "state_frame": torch.full((batch,), frames // (1 + seed % 3), dtype=torch.int64),
            "cluster_centres": torch.randn(5, ssl, generator=g),
            "cluster_ratio": torch.tensor([0.25 * (seed % 3)], dtype=torch.float32),
            "decode_from": torch.tensor([frames // 3 if seed == 2 else 0], dtype=torch.int64),  # one cropped run
            "audio_in": _waveform(batch, frames * hop, g),
            "auto_f0": torch.tensor([float(seed % 2)], dtype=torch.float32),
        }
        return values

    def plan(name: str, module: nn.Module, first: list[TensorSpecSketch]) -> GraphPlan:
        return GraphPlan(
            name=name, role=name, module=module.eval(), inputs=tuple(first + controls), outputs=outputs,
            make_inputs=make_inputs, lengths=split_parity_lengths(CONVERTER_LENGTHS, core.decode),
            tolerance=dict(tolerance),
            meta={"fp32_scopes": FP32_SCOPES["converter"], "hop": hop, "circular": {"phase_out": PHASE_ONE}},
        )

    units = TensorSpecSketch("units", "float32", ("batch", ssl, "unit_frames"))
    wav = TensorSpecSketch("wav16k", "float32", ("batch", "wav_samples"))
    f0 = TensorSpecSketch("f0_in", "float32", ("batch", "frames"))
    plans = [plan("synthesis", SynthesisGraph(core, with_audio, with_auto_f0), [units, f0])]
    if encoder is not None:
        plans.append(plan("converter_f0", ConverterF0Graph(encoder, core, with_audio, with_auto_f0), [wav, f0]))
        if pitch is not None:
            plans.append(plan("converter", ConverterGraph(encoder, pitch, core, with_audio, with_auto_f0), [wav]))
    return plans
