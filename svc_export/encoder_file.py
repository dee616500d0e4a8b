"""A user's ONNX speech encoder (so-vits-svc's "-onnx" variants) as the bundle's ``speech_encoder`` graph.

``svc-export --encoder-checkpoint vec-768-layer-12.onnx`` cannot trace the encoder from
torch; instead the file is checked (`svc_train.encoders.onnx_file.inspect_onnx_encoder`:
one float32 waveform input with a dynamic length, one frame per 320 samples, units of
the model's ``ssl_dim``, run on real-length audio) and rewritten to the bundle's
encoder contract around the user's nodes, which stay as they are:

    wav [batch, samples] -> Unsqueeze(axis 1) -> (the user's graph) -> Transpose -> units [batch, dim, frames]

(no Unsqueeze for a [batch, samples] input, no Transpose for a [1, dim, frames] output).
A graph whose batch axis is the constant 1 (so-vits-svc's files) runs inside a ``Scan``
over the batch, one item per iteration, so the bundle's batch axis stays dynamic. The
rewritten graph is proved against the original file (parity on the usual encoder
waveforms, batch 2 included) before it goes in.

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

from svc_export.graph_files import entry_files, save_graph
from svc_export.onnx_export import GraphExportError, GraphPlan, ParityResult, _max_error, require_parity
from svc_export.plans import UNITS_TOLERANCE, WAVEFORM_LENGTHS, waveform_plan
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
    "write_fused_converter",
    "is_encoder_file",
    "load_encoder_file",
    "rewrite_encoder_graph",
    "write_encoder_graph",
]

GRAPH_NAME = "speech_encoder"
INPUT_NAME = "wav"
OUTPUT_NAME = "units"
REFERENCE = "source onnx file"
FUSED_NAME = "converter_f0"
FUSED_WAV = TensorSpec("wav16k", "float32", ("batch", "wav_samples"))
"""The fused graph's audio input, as `svc_export.plans.converter_plans` names it for `converter_f0`."""


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
    """Rename a tensor everywhere in the graph's nodes (subgraphs included), outputs and value infos."""
    for node in graph.node:
        node.input[:] = [new if x == old else x for x in node.input]
        node.output[:] = [new if x == old else x for x in node.output]
        for sub in _subgraphs(node):
            _rename_tensor(sub, old, new)
    for value in (*graph.output, *graph.value_info):
        if value.name == old:
            value.name = new


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _axes_node(op: str, source: str, target: str, axes: list[int], opset: int, graph: onnx.GraphProto,
               taken: set[str], name: str) -> onnx.NodeProto:
    """Unsqueeze / Squeeze over ``axes`` (an input from opset 13, an attribute before)."""
    if opset >= 13:
        tensor = helper.make_tensor(_fresh(f"{name}_axes", taken), TensorProto.INT64, [len(axes)], axes)
        taken.add(tensor.name)
        graph.initializer.append(tensor)
        return helper.make_node(op, [source, tensor.name], [target], name=name)
    return helper.make_node(op, [source], [target], axes=axes, name=name)


def rewrite_encoder_graph(encoder: OnnxContentEncoder, target: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...], int]:
    """Write the user's graph with the bundle's ``wav`` [batch, samples] -> ``units`` [batch, dim, frames]
    interface to ``target``; returns (inputs, outputs, opset) for the manifest.

    A graph whose batch axis is the constant 1 runs inside a ``Scan`` over the batch (one item per
    iteration, initializers shared from the outer graph), so the bundle's batch axis stays dynamic.
    """
    layout = encoder.layout
    model = onnx.load(str(encoder.path))
    graph = model.graph
    opset = _opset(model)
    taken = {x for node in graph.node for x in (*node.input, *node.output)}
    taken |= {v.name for v in (*graph.input, *graph.output, *graph.initializer, *graph.value_info)}
    taken |= {INPUT_NAME, OUTPUT_NAME}
    source_in, source_out = layout.input_name, layout.output_name
    for name in (INPUT_NAME, OUTPUT_NAME):  # free the bundle's names if the user's graph uses them inside
        if name in (source_in, source_out) or any(name in (*n.input, *n.output) for n in graph.node):
            fresh = _fresh(name, taken)
            taken.add(fresh)
            _rename_tensor(graph, name, fresh)
            source_in = fresh if source_in == name else source_in
            source_out = fresh if source_out == name else source_out
    user_nodes = list(graph.node)
    del graph.node[:]
    outer_inputs = [v for v in graph.input if v.name not in (layout.input_name, source_in)]

    if not layout.batch_fixed:  # the user's graph takes the whole batch
        first = (_axes_node("Unsqueeze", INPUT_NAME, source_in, [1], opset, graph, taken, "svc_wav_to_source")
                 if layout.input_rank == 3 else helper.make_node("Identity", [INPUT_NAME], [source_in],
                                                                 name="svc_wav_to_source"))
        graph.node.extend([first, *user_nodes])
        batch_units = source_out
    else:  # one item at a time: Scan over the batch axis
        if opset < 9:
            raise GraphExportError(f"{encoder.path}: opset {opset} is too old to run per item (Scan needs opset 9+)")
        item, item_units = _fresh("svc_item", taken), _fresh("svc_item_units", taken)
        taken |= {item, item_units}
        axes = [0, 1] if layout.input_rank == 3 else [0]
        body_nodes = [
            _axes_node("Unsqueeze", item, source_in, axes, opset, graph, taken, "svc_item_to_source"),
            *user_nodes,
            _axes_node("Squeeze", source_out, item_units, [0], opset, graph, taken, "svc_source_to_item"),
        ]
        body = helper.make_graph(
            body_nodes, "svc_encoder_item",
            [helper.make_tensor_value_info(item, TensorProto.FLOAT, ["samples"])],
            [helper.make_tensor_value_info(item_units, TensorProto.FLOAT, None)],
        )
        body.value_info.extend(graph.value_info)
        del graph.value_info[:]
        batch_units = _fresh("svc_batch_units", taken)
        graph.node.append(helper.make_node("Scan", [INPUT_NAME], [batch_units], body=body, num_scan_inputs=1,
                                           name="svc_per_item"))
    if layout.time_axis == 1:
        graph.node.append(helper.make_node("Transpose", [batch_units], [OUTPUT_NAME], perm=[0, 2, 1], name="svc_units"))
    else:
        graph.node.append(helper.make_node("Identity", [batch_units], [OUTPUT_NAME], name="svc_units"))
    del graph.input[:]
    graph.input.extend([helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", "samples"]),
                        *outer_inputs])
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", encoder.dim, "frames"]))

    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        first = str(error).strip().splitlines()[0]
        raise GraphExportError(f"{encoder.path}: the rewritten encoder graph does not check ({first})") from None
    save_graph(model, target)
    inputs = (TensorSpec(INPUT_NAME, "float32", ("batch", "samples")),)
    outputs = (TensorSpec(OUTPUT_NAME, "float32", ("batch", encoder.dim, "frames")),)
    return inputs, outputs, opset


def encoder_file_parity(encoder: OnnxContentEncoder, rewritten: Path) -> list[ParityResult]:
    """Max abs error of the rewritten graph against the source file on the encoder parity waveforms."""
    plan = waveform_plan(GRAPH_NAME, GRAPH_NAME, encoder, OUTPUT_NAME, ("batch", encoder.dim, "frames"),
                         UNITS_TOLERANCE, WAVEFORM_LENGTHS)
    session = open_session(rewritten)
    results = []
    for seed, length in enumerate(WAVEFORM_LENGTHS):
        wav = plan.make_inputs(length, seed)[INPUT_NAME]
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
            role="speech_encoder", **entry_files(path), precision="fp32", opset=opset,
            inputs=inputs, outputs=outputs, parity=records,
        )
    }


def _subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    graphs = []
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            graphs.append(attribute.g)
        elif attribute.type == onnx.AttributeProto.GRAPHS:
            graphs.extend(attribute.graphs)
    return graphs


def _tensor_names(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name of ``graph`` and of its subgraphs (Scan / Loop / If bodies)."""
    names = {v.name for v in (*graph.input, *graph.output, *graph.value_info, *graph.initializer)}
    for node in graph.node:
        names |= {x for x in (*node.input, *node.output) if x}
        for sub in _subgraphs(node):
            names |= _tensor_names(sub)
    return names


def _prefix_names(graph: onnx.GraphProto, prefix: str, names: set[str]) -> None:
    """Prefix every tensor in ``names`` and every node name, subgraphs included (so that a body's
    references to the outer graph's initializers follow them; onnx.compose.add_prefix does not)."""
    for value in (*graph.input, *graph.output, *graph.value_info, *graph.initializer):
        if value.name in names:
            value.name = prefix + value.name
    for node in graph.node:
        node.input[:] = [prefix + x if x in names else x for x in node.input]
        node.output[:] = [prefix + x if x in names else x for x in node.output]
        if node.name:
            node.name = prefix + node.name
        for sub in _subgraphs(node):
            _prefix_names(sub, prefix, names)


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
    _prefix_names(encoder.graph, "encoder/", _tensor_names(encoder.graph))
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
    save_graph(fused, target)


def write_fused_converter(
    synthesis: GraphPlan,
    graphs: dict[str, GraphEntry],
    file_for: Callable[[str], Path],
    on_parity: Callable[[str, list[ParityResult]], None] | None = None,
) -> dict[str, GraphEntry]:
    """The ``converter_f0`` graph of a bundle whose encoder is a user's ONNX file: the staged
    ``speech_encoder`` fused in front of the staged ``synthesis`` graph (`fuse_in_front`), proved
    against running the two graphs in turn on the synthesis plan's inputs; its manifest entry.
    """
    encoder_entry, synthesis_entry = graphs[GRAPH_NAME], graphs[synthesis.name]
    target = file_for(f"{FUSED_NAME}.onnx")
    fuse_in_front(file_for(encoder_entry.file), file_for(synthesis_entry.file), target, FUSED_WAV.name)
    encoder_session = open_session(file_for(encoder_entry.file))
    synthesis_session, fused_session = open_session(file_for(synthesis_entry.file)), open_session(target)
    names = [spec.name for spec in synthesis_entry.outputs]
    controls = [spec.name for spec in synthesis_entry.inputs if spec.name != OUTPUT_NAME]
    results = []
    for seed, length in enumerate(synthesis.lengths):
        values = synthesis.make_inputs(length, seed)
        feeds = {name: values[name].numpy() for name in controls}
        wav = values[FUSED_WAV.name].numpy()
        units = encoder_session.run([OUTPUT_NAME], {INPUT_NAME: wav})[0]
        want = synthesis_session.run(names, {**feeds, OUTPUT_NAME: units})
        got = fused_session.run(names, {**feeds, FUSED_WAV.name: wav})
        for name, a, b in zip(names, got, want):
            error = _max_error(b, a, synthesis.meta.get("circular", {}).get(name))
            results.append(ParityResult(FUSED_NAME, name, length, error, synthesis.tolerance[name],
                                        f"{GRAPH_NAME} + {synthesis.name} graphs"))
    if on_parity:
        on_parity(f"{FUSED_NAME} (fp32, fused from {GRAPH_NAME} + {synthesis.name}) vs the two graphs", results)
    require_parity(results)
    records = tuple(ParityRecord(r.output, r.length, r.max_abs_error, r.tolerance, r.reference) for r in results)
    inputs = (FUSED_WAV, *(spec for spec in synthesis_entry.inputs if spec.name != OUTPUT_NAME))
    return {
        FUSED_NAME: GraphEntry(
            role=FUSED_NAME, **entry_files(target), precision="fp32",
            opset=max(encoder_entry.opset, synthesis_entry.opset), inputs=inputs, outputs=synthesis_entry.outputs,
            parity=records,
        )
    }
