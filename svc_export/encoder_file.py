"""A user's ONNX speech encoder (so-vits-svc's "-onnx" variants) as the bundle's ``speech_encoder`` graph.

``svc-export --encoder-checkpoint vec-768-layer-12.onnx`` cannot trace the encoder from
torch; instead the file is checked (`svc_train.encoders.onnx_file.inspect_onnx_encoder`:
one float32 waveform input with a dynamic length, one frame per 320 samples, units of
the model's ``ssl_dim``, run on real-length audio) and rewritten to the bundle's
encoder contract around the user's nodes, which stay as they are:

    wav [batch, samples] -> Unsqueeze(axis 1) -> (the user's graph) -> Transpose -> units [batch, dim, frames]

(no Unsqueeze for a [batch, samples] input, no Transpose for a [1, dim, frames] output).
A graph whose batch axis is the constant 1 keeps it: the manifest then says ``wav``
[1, samples]; the runtime feeds one window at a time. The rewritten graph is proved
against the original file (parity on the usual encoder waveforms) before it goes in.

Such an encoder cannot be fused with the generator from torch modules (no torch form
of the user's graph exists). `fuse_in_front` composes at the ONNX level instead: the
staged encoder graph feeding a graph that takes ``units`` (e.g. the bundle's
``synthesis`` graph, giving the equivalent of ``converter_f0``); otherwise hosts run the
encoder and the synthesis graphs as two graphs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, compose, helper, version_converter

from svc_export.onnx_export import GraphExportError, ParityResult, require_parity
from svc_export.plans import UNITS_TOLERANCE, WAVEFORM_LENGTHS, waveform_plan
from svc_runtime.bundle.bundle import sha256_of
from svc_runtime.bundle.manifest import GraphEntry, ParityRecord, TensorSpec
from svc_train.encoders.layouts import CheckpointLayoutError
from svc_train.encoders.onnx_file import (
    OnnxContentEncoder,
    load_onnx_encoder,
    open_session,
)

__all__ = [
    "GRAPH_NAME",
    "fuse_in_front",
    "is_encoder_file",
    "load_encoder_file",
    "rewrite_encoder_graph",
    "write_encoder_graph",
]

GRAPH_NAME = "speech_encoder"
INPUT_NAME = "wav"
OUTPUT_NAME = "units"
REFERENCE = "source onnx file"


def is_encoder_file(module: object) -> bool:
    """The loaded speech encoder is a user's ONNX file (no torch graph to trace)."""
    return isinstance(module, OnnxContentEncoder)


def load_encoder_file(path: Path, name: str, ssl_dim: int) -> OnnxContentEncoder:
    """Open and check an ONNX encoder file for a model with units of ``ssl_dim``.

    Raises CheckpointLayoutError (a ValueError) naming the file and what does not fit.
    """
    encoder = load_onnx_encoder(Path(path), name)
    if encoder.dim != ssl_dim:
        raise CheckpointLayoutError(
            f"{path}: gives units of {encoder.dim} values per frame; the model needs {ssl_dim} (config model.ssl_dim)"
        )
    return encoder


def _fresh(name: str, taken: set[str]) -> str:
    candidate, k = f"{name}_source", 0
    while candidate in taken:
        k += 1
        candidate = f"{name}_source{k}"
    return candidate


def _rename_tensor(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename a tensor everywhere in the top-level graph's nodes and outputs."""
    for node in graph.node:
        node.input[:] = [new if x == old else x for x in node.input]
        node.output[:] = [new if x == old else x for x in node.output]
    for output in graph.output:
        if output.name == old:
            output.name = new


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def rewrite_encoder_graph(encoder: OnnxContentEncoder, target: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...], int]:
    """Write the user's graph with the bundle's ``wav`` -> ``units`` interface to ``target``.

    Returns (inputs, outputs, opset) for the manifest.
    """
    layout = encoder.layout
    model = onnx.load(str(encoder.path))
    graph = model.graph
    opset = _opset(model)
    taken = {x for node in graph.node for x in (*node.input, *node.output)}
    taken |= {v.name for v in (*graph.input, *graph.output, *graph.initializer)}
    batch: int | str = 1 if layout.batch_fixed else "batch"

    source_in = layout.input_name
    if source_in == INPUT_NAME or layout.input_rank == 3:
        inner = _fresh(source_in, taken) if source_in == INPUT_NAME else source_in
        _rename_tensor(graph, source_in, inner)
        if layout.input_rank == 3:
            if opset >= 13:
                axes = helper.make_tensor(_fresh("unsqueeze_axes", taken), TensorProto.INT64, [1], [1])
                graph.initializer.append(axes)
                node = helper.make_node("Unsqueeze", [INPUT_NAME, axes.name], [inner], name="svc_wav_to_source")
            else:
                node = helper.make_node("Unsqueeze", [INPUT_NAME], [inner], axes=[1], name="svc_wav_to_source")
        else:
            node = helper.make_node("Identity", [INPUT_NAME], [inner], name="svc_wav_to_source")
        graph.node.insert(0, node)
    kept_inputs = [v for v in graph.input if v.name != source_in]
    del graph.input[:]
    graph.input.extend([helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [batch, "samples"]), *kept_inputs])

    source_out = layout.output_name
    if source_out == OUTPUT_NAME:
        renamed = _fresh(source_out, taken)
        _rename_tensor(graph, source_out, renamed)
        source_out = renamed
    if layout.time_axis == 1:
        graph.node.append(helper.make_node("Transpose", [source_out], [OUTPUT_NAME], perm=[0, 2, 1], name="svc_units"))
    else:
        graph.node.append(helper.make_node("Identity", [source_out], [OUTPUT_NAME], name="svc_units"))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [batch, encoder.dim, "frames"]))

    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        first = str(error).strip().splitlines()[0]
        raise GraphExportError(f"{encoder.path}: the rewritten encoder graph does not check ({first})") from None
    onnx.save(model, str(target))
    inputs = (TensorSpec(INPUT_NAME, "float32", (batch, "samples")),)
    outputs = (TensorSpec(OUTPUT_NAME, "float32", (batch, encoder.dim, "frames")),)
    return inputs, outputs, opset


def encoder_file_parity(encoder: OnnxContentEncoder, rewritten: Path) -> list[ParityResult]:
    """Max abs error of the rewritten graph against the source file on the encoder parity waveforms."""
    plan = waveform_plan(GRAPH_NAME, GRAPH_NAME, encoder, OUTPUT_NAME, ("batch", encoder.dim, "frames"),
                         UNITS_TOLERANCE, WAVEFORM_LENGTHS)
    session = open_session(rewritten)
    results = []
    for seed, length in enumerate(WAVEFORM_LENGTHS):
        wav = plan.make_inputs(length, seed)[INPUT_NAME]
        if encoder.layout.batch_fixed:
            wav = wav[:1]
        with torch.no_grad():
            expected = encoder(wav).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: wav.numpy()})[0]
        if got.shape != expected.shape:
            raise GraphExportError(
                f"{encoder.path}: the rewritten graph gives units {list(got.shape)}, the file {list(expected.shape)}"
            )
        error = float(np.max(np.abs(got - expected))) if got.size else 0.0
        results.append(ParityResult(GRAPH_NAME, OUTPUT_NAME, length, error, UNITS_TOLERANCE, REFERENCE))
    return results


def write_encoder_graph(
    encoder: OnnxContentEncoder,
    file_for: Callable[[str], Path],
    on_parity: Callable[[str, list[ParityResult]], None] | None = None,
) -> dict[str, GraphEntry]:
    """Rewrite, prove and stage the user's encoder as graph ``speech_encoder``; its manifest entry.

    ``file_for(name)`` gives the staged path of a bundle file (`BundleStaging.file`).
    """
    path = file_for(f"{GRAPH_NAME}.onnx")
    inputs, outputs, opset = rewrite_encoder_graph(encoder, path)
    results = encoder_file_parity(encoder, path)
    if on_parity:
        on_parity(f"{GRAPH_NAME} (fp32, from {encoder.path.name}) vs the source file", results)
    require_parity(results)
    records = tuple(
        ParityRecord(r.output, r.length, r.max_abs_error, r.tolerance, r.reference) for r in results
    )
    return {
        GRAPH_NAME: GraphEntry(
            role="speech_encoder", file=path.name, sha256=sha256_of(path), precision="fp32", opset=opset,
            inputs=inputs, outputs=outputs, parity=records,
        )
    }


def _at_opset(model: onnx.ModelProto, opset: int, what: str) -> onnx.ModelProto:
    if _opset(model) == opset:
        return model
    try:
        return version_converter.convert_version(model, opset)
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise GraphExportError(f"{what}: cannot move it from opset {_opset(model)} to {opset} ({first})") from None


def fuse_in_front(encoder_graph: Path, consumer_graph: Path, target: Path, wav_name: str = "wav16k") -> None:
    """Write ``target``: ``encoder_graph`` (``wav`` -> ``units``, as `rewrite_encoder_graph` writes it)
    feeding the ``units`` input of ``consumer_graph``; the fused graph takes ``wav_name`` instead of
    ``units`` and keeps every other input and output of the consumer.

    Both graphs move to the higher of their opsets; the encoder's tensors get the prefix ``encoder/``.
    """
    encoder, consumer = onnx.load(str(encoder_graph)), onnx.load(str(consumer_graph))
    if OUTPUT_NAME not in {i.name for i in consumer.graph.input}:
        raise GraphExportError(f"{consumer_graph}: has no {OUTPUT_NAME!r} input to feed the speech encoder into")
    if wav_name in {i.name for i in consumer.graph.input}:
        raise GraphExportError(f"{consumer_graph}: already has an input named {wav_name!r}")
    opset = max(_opset(encoder), _opset(consumer))
    encoder = _at_opset(encoder, opset, str(encoder_graph))
    consumer = _at_opset(consumer, opset, str(consumer_graph))
    encoder.ir_version = consumer.ir_version = max(encoder.ir_version, consumer.ir_version)
    encoder = compose.add_prefix(encoder, "encoder/")
    fused = compose.merge_models(encoder, consumer, io_map=[(f"encoder/{OUTPUT_NAME}", OUTPUT_NAME)])
    _rename_tensor(fused.graph, f"encoder/{INPUT_NAME}", wav_name)
    for graph_input in fused.graph.input:
        if graph_input.name == f"encoder/{INPUT_NAME}":
            graph_input.name = wav_name
    try:
        onnx.checker.check_model(fused)
    except onnx.checker.ValidationError as error:
        first = str(error).strip().splitlines()[0]
        raise GraphExportError(f"{target.name}: the fused graph does not check ({first})") from None
    onnx.save(fused, str(target))
