"""so-vits-svc's "-onnx" speech encoders: an ONNX file the user already has, run by ONNX Runtime.

so-vits-svc's ``ContentVec*_Onnx`` / ``HubertSoft_Onnx`` feed the graph's first (and
only) input a float32 waveform shaped [1, 1, samples] at 16 kHz and read the first
output as [1, frames, dim] (one frame per 320 samples). `inspect_onnx_encoder` checks
a file against that contract by its declared inputs and outputs and by running it on
two lengths (which output axis grows with the input is the time axis, so a
[1, dim, frames] output is accepted too); `OnnxContentEncoder` wraps the checked file as
a module with the same interface as the torch encoders (wav [B, N] -> units
[B, dim, frames]), for feature extraction. It cannot be traced into a torch graph;
svc-export copies the file into the bundle instead (`svc_export.encoder_file`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from svc_runtime.vocabulary import ENCODER_HOP, ENCODER_SAMPLE_RATE
from svc_train.encoders.layouts import CheckpointLayoutError

__all__ = ["OnnxContentEncoder", "OnnxEncoderLayout", "inspect_onnx_encoder", "load_onnx_encoder", "open_session"]

SAMPLE_RATE = ENCODER_SAMPLE_RATE
HOP = ENCODER_HOP
PROBE_SAMPLES = (16000, 24000)
"""Probe lengths (1 s and 1.5 s): 50 and 75 frames at one frame per 320 samples."""
FRAME_SLACK = 2
"""Frames an encoder may give fewer or more than N / 320 (conv edges: ContentVec gives (N - 80) // 320)."""


@dataclass(frozen=True)
class OnnxEncoderLayout:
    """What the checked graph takes and gives.

    input_name / output_name: the graph's first input and output; input_rank: 3 for
    so-vits-svc's [1, 1, samples], 2 for [batch, samples]; batch_fixed: the batch axis
    is the constant 1 (items run one at a time); time_axis: 1 for [1, frames, dim],
    2 for [1, dim, frames]; dim: units per frame.
    """

    input_name: str
    output_name: str
    input_rank: int
    batch_fixed: bool
    time_axis: int
    dim: int

    def feed(self, wav: np.ndarray) -> np.ndarray:
        """wav [N] or [B, N] float32 -> the graph's input ([1, 1, N] or [B, N])."""
        wav = np.ascontiguousarray(wav, dtype=np.float32)
        if self.input_rank == 3:
            return wav.reshape(1, 1, -1)
        return wav.reshape(1 if wav.ndim == 1 else wav.shape[0], -1)

    def units(self, output: np.ndarray) -> np.ndarray:
        """The graph's output -> units [B, dim, frames]."""
        return output if self.time_axis == 2 else output.transpose(0, 2, 1)


def open_session(path: Path, threads: int = 0):
    """An ONNX Runtime CPU session on ``path``; CheckpointLayoutError when it is not a loadable graph."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as error:
        raise CheckpointLayoutError(f"{path}: ONNX Runtime cannot load it as a graph ({_ort_cause(error)})") from None


def _ort_cause(error: Exception) -> str:
    """First line of an onnxruntime error; any other exception is re-raised unchanged."""
    if not (type(error).__module__ or "").startswith("onnxruntime"):
        raise error
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _probe_wave(samples: int) -> np.ndarray:
    """A harmonic tone with a little noise, peak about 0.4 (what the encoder sees in use)."""
    t = np.arange(samples) / SAMPLE_RATE
    tone = sum(np.sin(2 * np.pi * 180.0 * k * t) / k for k in range(1, 6)) * 0.2
    return (tone + 0.01 * np.random.default_rng(0).standard_normal(samples)).astype(np.float32)


def inspect_onnx_encoder(path: Path, session=None) -> OnnxEncoderLayout:
    """Check that ``path`` is a so-vits-svc style speech encoder and learn its layout.

    Raises CheckpointLayoutError naming the file and what does not fit.
    """
    session = session if session is not None else open_session(path)
    graph_input, graph_output = _one_input_one_output(path, session)
    rank, batch_fixed = _check_input(path, graph_input)
    if graph_output.type != "tensor(float)":
        raise CheckpointLayoutError(f"{path}: output {graph_output.name!r} is {graph_output.type}; expected float32 units")
    probe = OnnxEncoderLayout(graph_input.name, graph_output.name, rank, batch_fixed, 1, 0)
    results = [_probe_output_shape(path, session, probe, samples) for samples in PROBE_SAMPLES]
    time_axis, dim = _time_axis_and_dim(path, results)
    return OnnxEncoderLayout(graph_input.name, graph_output.name, rank, batch_fixed, time_axis, dim)


def _one_input_one_output(path: Path, session):
    """The graph's input and (first) output; the graph must take exactly one input."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise CheckpointLayoutError(
            f"{path}: a speech encoder graph takes one input (the 16 kHz waveform); this one takes {len(inputs)}: {names}"
        )
    if not outputs:
        raise CheckpointLayoutError(f"{path}: the graph has no output")
    return inputs[0], outputs[0]


def _check_input(path: Path, graph_input) -> tuple[int, bool]:
    """(rank, batch fixed to 1) of a float32 waveform input [1, 1, samples] or [batch, samples]."""
    if graph_input.type != "tensor(float)":
        raise CheckpointLayoutError(
            f"{path}: input {graph_input.name!r} is {graph_input.type}; a speech encoder takes float32 audio"
        )
    shape = list(graph_input.shape)
    if len(shape) not in (2, 3):
        raise CheckpointLayoutError(
            f"{path}: input {graph_input.name!r} has shape {shape}; expected [1, 1, samples] (so-vits-svc) "
            "or [batch, samples]"
        )
    if isinstance(shape[-1], int):
        raise CheckpointLayoutError(
            f"{path}: input {graph_input.name!r} has a fixed length of {shape[-1]} samples; "
            "re-export the encoder with a dynamic length axis"
        )
    if len(shape) == 3 and isinstance(shape[1], int) and shape[1] != 1:
        raise CheckpointLayoutError(f"{path}: input {graph_input.name!r} has {shape[1]} channels; expected 1 (mono)")
    batch_fixed = isinstance(shape[0], int)
    if batch_fixed and shape[0] != 1:
        raise CheckpointLayoutError(f"{path}: input {graph_input.name!r} has a fixed batch of {shape[0]}; expected 1")
    return len(shape), batch_fixed


def _probe_output_shape(path: Path, session, probe: OnnxEncoderLayout, samples: int) -> tuple[int, ...]:
    """The output's shape for a test tone of ``samples`` samples: [1, frames, dim] or [1, dim, frames], finite."""
    feed = probe.feed(_probe_wave(samples))
    try:
        out = session.run([probe.output_name], {probe.input_name: feed})[0]
    except Exception as error:
        raise CheckpointLayoutError(
            f"{path}: running it on 16 kHz audio shaped {list(feed.shape)} failed ({_ort_cause(error)})"
        ) from None
    out = np.asarray(out)
    if out.ndim != 3 or out.shape[0] != 1:
        raise CheckpointLayoutError(
            f"{path}: output {probe.output_name!r} has shape {list(out.shape)} for one waveform; "
            "expected [1, frames, dim]"
        )
    if not np.isfinite(out).all():
        raise CheckpointLayoutError(f"{path}: output {probe.output_name!r} holds NaN or Inf for a plain tone")
    return out.shape


def _time_axis_and_dim(path: Path, results: list[tuple[int, ...]]) -> tuple[int, int]:
    """The output axis that grows with the input (one frame per HOP samples) and the units' size."""
    grows = [axis for axis in (1, 2) if results[1][axis] > results[0][axis]]
    if len(grows) != 1:
        raise CheckpointLayoutError(
            f"{path}: no single output axis grows with the input (shapes {list(results[0])} for "
            f"{PROBE_SAMPLES[0]} samples, {list(results[1])} for {PROBE_SAMPLES[1]}); expected [1, frames, dim]"
        )
    time_axis = grows[0]
    for samples, out_shape in zip(PROBE_SAMPLES, results):
        frames = out_shape[time_axis]
        if abs(frames - samples / HOP) > FRAME_SLACK:
            raise CheckpointLayoutError(
                f"{path}: gives {frames} frames for {samples} samples; so-vits-svc's encoders give one frame per "
                f"{HOP} samples ({samples // HOP}) at 16 kHz"
            )
    return time_axis, int(results[0][3 - time_axis])


class OnnxContentEncoder(nn.Module):
    """An "-onnx" encoder file as a module: wav [B, N] float32 16 kHz -> units [B, dim, frames].

    Runs in ONNX Runtime (CPU), one item at a time when the graph's batch is fixed to 1;
    no gradients, not traceable.
    """

    sample_rate = SAMPLE_RATE
    hop_size = HOP
    min_samples = 400

    def __init__(self, name: str, path: Path, session, layout: OnnxEncoderLayout) -> None:
        super().__init__()
        self.name = name
        self.path = Path(path)
        self.layout = layout
        self.dim = layout.dim
        self._session = session

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            raise RuntimeError(
                f"{self.name} runs the ONNX file {self.path.name} in ONNX Runtime and cannot be traced into a torch "
                "graph; use the file itself as the speech-encoder graph (svc_export.encoder_file)"
            )
        if wav.dim() != 2:
            raise ValueError(f"wav must be [batch, samples], got shape {tuple(wav.shape)}")
        if wav.shape[-1] < self.min_samples:
            raise ValueError(f"wav has {wav.shape[-1]} samples; {self.name} needs at least {self.min_samples}")
        audio = wav.detach().to("cpu", torch.float32).numpy()
        layout = self.layout
        items = [audio[i] for i in range(audio.shape[0])] if layout.input_rank == 3 or layout.batch_fixed else [audio]
        units = [layout.units(self._session.run([layout.output_name], {layout.input_name: layout.feed(x)})[0])
                 for x in items]
        return torch.from_numpy(np.concatenate(units, axis=0)).to(wav.device)


def load_onnx_encoder(path: Path, name: str) -> OnnxContentEncoder:
    """Open, check and wrap an "-onnx" encoder file (see the module docstring); eval mode.

    The units' size comes from the file (checked against ``ssl_dim`` where they are used).
    """
    session = open_session(path, threads=torch.get_num_threads())  # a feature worker's share of the cores
    layout = inspect_onnx_encoder(path, session)
    return OnnxContentEncoder(name, path, session, layout).eval()
