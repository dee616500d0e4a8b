"""Half-precision graphs for the GPU, keeping the numerically sensitive parts in fp32.

Uses ONNX Runtime's own converter (`onnxruntime.transformers.float16`) with
block lists: normalisations, exponentials/logs and reductions stay fp32 by op
type, and every node inside a named scope of the module (the NSF source's
phase and sine path, the f0 -> coarse-bin mapping) stays fp32 by node name.
Graph inputs and outputs keep their fp32 types, so hosts feed the same arrays.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx
import onnx.external_data_helper
from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

from svc_export.graph_files import check_graph, data_file_of, infer_shapes, remove_graph, save_graph

FP32_OPS = (
    "LayerNormalization",
    "GroupNormalization",
    "InstanceNormalization",
    "BatchNormalization",
    "ReduceMean",
    "ReduceSum",
    "Softmax",
    "Exp",
    "Log",
    "Pow",
    "Sqrt",
    "Reciprocal",
    "Sin",
    "Cos",
    "Mod",
    "Floor",
    "Round",
    "Erf",
    "GRU",
    "LSTM",
    "RNN",
)
"""Op types kept in fp32 everywhere (normalisations, reductions, transcendental functions, and
recurrent layers, whose state accumulates error over time)."""


def fp32_node_names(model: onnx.ModelProto, scopes: tuple[str, ...]) -> list[str]:
    """Names of the nodes whose name contains one of `scopes` (TorchScript names nodes by module path)."""
    return [node.name for node in model.graph.node if any(scope in node.name for scope in scopes)]


def sort_topologically(graph: onnx.GraphProto) -> None:
    """Reorder `graph.node` so that every node comes after the producers of its inputs.

    The converter appends its Cast nodes at the end, which ONNX forbids; this restores order.
    """
    producer = {output: index for index, node in enumerate(graph.node) for output in node.output if output}
    nodes = list(graph.node)
    waiting = [sum(1 for i in set(node.input) if i in producer) for node in nodes]
    consumers: dict[int, list[int]] = {}
    for index, node in enumerate(nodes):
        for name in set(node.input):
            if name in producer:
                consumers.setdefault(producer[name], []).append(index)
    ready = [i for i, count in enumerate(waiting) if count == 0]
    order = []
    while ready:
        index = ready.pop(0)
        order.append(index)
        for consumer in consumers.get(index, []):
            waiting[consumer] -= 1
            if waiting[consumer] == 0:
                ready.append(consumer)
    if len(order) != len(nodes):
        raise ValueError("graph has a cycle; cannot sort it topologically")
    del graph.node[:]
    graph.node.extend(nodes[i] for i in order)


def remove_round_trip_casts(model: onnx.ModelProto) -> int:
    """Feed fp32 consumers the original fp32 value where the converter made fp32 -> fp16 -> fp32.

    With fp32 graph inputs the converter casts each input to fp16 once and casts it back
    for every fp32-blocked consumer, which would quantise f0 and phases to fp16 on the way
    into the fp32 parts. Returns the number of rewired consumers.
    """
    inferred = infer_shapes(model)  # past 2 GiB too
    types = {v.name: v.type.tensor_type.elem_type for v in list(inferred.graph.value_info) + list(inferred.graph.input)}
    producer = {output: node for node in model.graph.node for output in node.output}
    replace: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type != "Cast" or _cast_to(node) != onnx.TensorProto.FLOAT:
            continue
        inner = producer.get(node.input[0])
        if inner is None or inner.op_type != "Cast" or _cast_to(inner) != onnx.TensorProto.FLOAT16:
            continue
        if types.get(inner.input[0]) == onnx.TensorProto.FLOAT:
            replace[node.output[0]] = inner.input[0]
    graph_outputs = {o.name for o in model.graph.output}
    rewired = 0
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name in replace and name not in graph_outputs:
                node.input[i] = replace[name]
                rewired += 1
    return rewired


def _cast_to(node: onnx.NodeProto) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None)


def convert_to_fp16(src: Path, dst: Path, fp32_scopes: tuple[str, ...] = ()) -> dict[str, int]:
    """Write an fp16 copy of graph `src` to `dst`; fp32 inputs/outputs, sensitive parts kept fp32.

    fp32_scopes: substrings of node names (module paths such as "/source/") to keep fp32.
    Returns counts: nodes in total, kept fp32 by scope.
    """
    src, dst = Path(src), Path(dst)
    external = data_file_of(src) is not None
    if external:  # shape inference by path (in memory it stops at 2 GiB); the data file stays beside it
        with tempfile.TemporaryDirectory(prefix=f".{src.stem}.shapes-", dir=src.parent) as scratch:
            inferred = Path(scratch) / src.name
            onnx.shape_inference.infer_shapes_path(str(src), str(inferred))
            model = onnx.load(str(inferred), load_external_data=False)
        onnx.external_data_helper.load_external_data_for_model(model, str(src.parent))
    else:
        model = onnx.load(str(src))
    blocked_nodes = fp32_node_names(model, fp32_scopes)
    if fp32_scopes and not blocked_nodes:
        raise ValueError(f"{src.name}: no node name contains {fp32_scopes}; the fp32 scopes do not match the graph")
    converted = convert_float_to_float16(
        model,
        disable_shape_infer=external,
        keep_io_types=True,
        op_block_list=sorted(set(DEFAULT_OP_BLOCK_LIST) | set(FP32_OPS)),
        node_block_list=blocked_nodes,
    )
    sort_topologically(converted.graph)
    rewired = remove_round_trip_casts(converted)
    # the source's layout: a graph with external data gets an fp16 copy with its own data file
    save_graph(converted, dst, external=True if external else None)
    try:
        check_graph(dst)  # by path: past 2 GiB and with external data too
    except onnx.checker.ValidationError:
        remove_graph(dst)
        raise
    return {"nodes": len(model.graph.node), "fp32_by_scope": len(blocked_nodes), "exact_fp32_inputs": rewired}
