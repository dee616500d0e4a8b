"""Graph pass: run 1-D convolutions as 2-D ones so ONNX Runtime's CPU provider can use its
blocked NCHWc kernels, which it applies to 2-D convolutions only.

`conv1d_as_conv2d` rewrites every Conv / ConvTranspose whose weight is a rank-3 initializer
([C_out, C_in/g, k], or [C_in, C_out/g, k] transposed) into
Unsqueeze(axis 2) -> 2-D Conv with kernel (1, k) -> Squeeze(axis 2): the same sums, so the
same numbers up to float rounding (measured 1.9e-7 on a generator's audio peaking at 0.23).
`stay_2d` then removes the Squeeze -> elementwise -> Unsqueeze round trips between rewritten
convolutions, so chains such as LeakyRelu -> Conv -> Add stay [B, C, 1, T].

Measured on a 2-core CPU (benchmarks/results/e2e.md): generator graph 1.35x at one thread,
1.20x at two; FCPE 1.44x / 1.30x; HuBERT about 1.05x.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from svc_export.graph_files import copy_model

AXIS_NAME = "conv2d_pass_axis2"
"""The int64 [2] initializer every inserted Unsqueeze / Squeeze takes as its axes."""
UNSQUEEZE_SUFFIX = "/conv2d_pass_unsqueeze"
SQUEEZE_SUFFIX = "/conv2d_pass_squeeze"

_UNARY = frozenset({"LeakyRelu", "Relu", "Tanh", "Sigmoid", "Neg", "Identity"})
_BINARY = frozenset({"Add", "Mul", "Sub", "Div"})


def _attr(node: onnx.NodeProto, name: str):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return None


def _names_used(graph: onnx.GraphProto) -> set[str]:
    """Every value name read by a node of `graph` or of its subgraphs (If / Loop / Scan bodies)."""
    used: set[str] = set()
    for node in graph.node:
        used.update(node.input)
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                used |= _names_used(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for sub in a.graphs:
                    used |= _names_used(sub)
    return used


def _require_opset13(model: onnx.ModelProto) -> None:
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if version < 13:
        raise ValueError(f"the conv1d -> conv2d pass needs opset >= 13 (Squeeze axes as an input); graph has {version}")


def _conv2d_attributes(node: onnx.NodeProto, kernel_size: int) -> dict[str, object]:
    if _attr(node, "auto_pad") not in (None, b"NOTSET", "NOTSET"):
        raise ValueError(f"{node.name}: auto_pad is not supported by the conv1d -> conv2d pass")
    pads = _attr(node, "pads") or [0, 0]
    attrs: dict[str, object] = {
        "kernel_shape": [1, int((_attr(node, "kernel_shape") or [kernel_size])[0])],
        "strides": [1, int((_attr(node, "strides") or [1])[0])],
        "dilations": [1, int((_attr(node, "dilations") or [1])[0])],
        "pads": [0, int(pads[0]), 0, int(pads[1])],
    }
    group = _attr(node, "group")
    if group is not None:
        attrs["group"] = int(group)
    if node.op_type == "ConvTranspose":
        output_padding = _attr(node, "output_padding")
        if output_padding is not None:
            attrs["output_padding"] = [0, int(output_padding[0])]
        output_shape = _attr(node, "output_shape")
        if output_shape is not None:
            attrs["output_shape"] = [1, int(output_shape[-1])]
    return attrs


def conv1d_as_conv2d(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of `model` with its 1-D Conv / ConvTranspose nodes as 2-D ones; (model, nodes rewritten).

    Only convolutions whose weight is a rank-3 initializer are rewritten (a weight computed in
    the graph is left alone). Node names keep their module path (name + "_2d"), so name-scoped
    passes (fp16 block lists, TensorRT fp32 layers) still find them.
    """
    _require_opset13(model)
    model = copy_model(model)  # not through bytes: a graph past 2 GiB cannot be serialised
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    if AXIS_NAME not in inits:
        graph.initializer.append(numpy_helper.from_array(np.array([2], dtype=np.int64), AXIS_NAME))
    weights_4d: set[str] = set()
    new_nodes = []
    count = 0
    for node in graph.node:
        is_conv = node.op_type in ("Conv", "ConvTranspose") and node.domain in ("", "ai.onnx") and len(node.input) > 1
        weight = inits.get(node.input[1]) if is_conv else None
        if weight is None or len(weight.dims) != 3:
            new_nodes.append(node)
            continue
        count += 1
        w4_name = node.input[1] + "_as_2d"
        if w4_name not in weights_4d:  # a weight shared by several convolutions is reshaped once
            w = numpy_helper.to_array(weight)
            graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w[:, :, None, :]), w4_name))
            weights_4d.add(w4_name)
        x4 = node.output[0] + "_in4d"
        y4 = node.output[0] + "_out4d"
        new_nodes.append(helper.make_node("Unsqueeze", [node.input[0], AXIS_NAME], [x4], name=node.name + UNSQUEEZE_SUFFIX))
        new_nodes.append(helper.make_node(
            node.op_type, [x4, w4_name, *node.input[2:]], [y4], name=node.name + "_2d",
            **_conv2d_attributes(node, int(weight.dims[2])),
        ))
        new_nodes.append(helper.make_node("Squeeze", [y4, AXIS_NAME], [node.output[0]], name=node.name + SQUEEZE_SUFFIX))
    del graph.node[:]
    graph.node.extend(new_nodes)
    used = _names_used(graph)
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return model, count


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """The graph's one-element constants (all `_is_small_scalar` asks about; weights are not converted)."""
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer if math.prod(t.dims) == 1}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            if math.prod(node.attribute[0].t.dims) == 1:
                consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return consts


def _is_small_scalar(name: str, consts: dict[str, np.ndarray]) -> bool:
    """One value of rank <= 3: broadcasts the same against [B, C, T] and [B, C, 1, T]."""
    return name in consts and consts[name].size == 1 and consts[name].ndim <= 3


def stay_2d(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Remove Squeeze -> elementwise -> Unsqueeze round trips left by `conv1d_as_conv2d`.

    Walks the (topologically sorted) graph keeping, for each [B, C, T] tensor, a [B, C, 1, T]
    twin where one exists; elementwise ops on twins (or on a twin and a scalar constant) get a
    4-D copy, and an inserted Unsqueeze of a tensor with a twin is replaced by the twin. Nodes
    left without consumers are dropped. Returns (model, Unsqueeze nodes removed).
    """
    model = copy_model(model)  # not through bytes: a graph past 2 GiB cannot be serialised
    graph = model.graph
    consts = _constants(graph)
    twin: dict[str, str] = {}
    rename: dict[str, str] = {}
    out_nodes = []
    removed = 0
    for node in graph.node:
        inputs = [rename.get(i, i) for i in node.input]
        del node.input[:]
        node.input.extend(inputs)
        if node.op_type == "Unsqueeze" and node.name.endswith(UNSQUEEZE_SUFFIX):
            if node.input[0] in twin:
                rename[node.output[0]] = twin[node.input[0]]
                removed += 1
                continue
            twin[node.input[0]] = node.output[0]
            out_nodes.append(node)
            continue
        out_nodes.append(node)
        if node.op_type == "Squeeze" and node.name.endswith(SQUEEZE_SUFFIX):
            twin[node.output[0]] = node.input[0]
        elif node.op_type in _UNARY and node.input[0] in twin:
            out4 = node.output[0] + "_4d"
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            out_nodes.append(helper.make_node(node.op_type, [twin[node.input[0]]], [out4], name=node.name + "_4d", **attrs))
            twin[node.output[0]] = out4
        elif node.op_type in _BINARY and len(node.input) == 2:
            a, b = node.input
            usable = all(x in twin or _is_small_scalar(x, consts) for x in (a, b))
            if usable and (a in twin or b in twin):
                out4 = node.output[0] + "_4d"
                out_nodes.append(helper.make_node(node.op_type, [twin.get(a, a), twin.get(b, b)], [out4],
                                                  name=node.name + "_4d"))
                twin[node.output[0]] = out4
    outputs = {o.name for o in graph.output}
    while True:  # drop nodes whose outputs nobody reads (the 3-D originals of 4-D copies)
        del graph.node[:]
        graph.node.extend(out_nodes)
        used = _names_used(graph) | outputs
        kept = [n for n in out_nodes if any(o in used for o in n.output if o)]
        if len(kept) == len(out_nodes):
            break
        out_nodes = kept
    produced = {o for n in graph.node for o in n.output}
    kept_info = [v for v in graph.value_info if v.name in produced]
    del graph.value_info[:]
    graph.value_info.extend(kept_info)
    return model, removed


def rewrite_model(model: onnx.ModelProto, keep_2d: bool = True) -> tuple[onnx.ModelProto, int]:
    """`conv1d_as_conv2d` then (keep_2d) `stay_2d`; (model, convolutions rewritten)."""
    model, count = conv1d_as_conv2d(model)
    if keep_2d and count:
        model, _ = stay_2d(model)
    return model, count


def rewrite_file(source: Path, target: Path, keep_2d: bool = True) -> int:
    """Rewrite graph `source` into `target` (may be the same file); the number of convolutions rewritten."""
    model, count = rewrite_model(onnx.load(str(source)), keep_2d)
    onnx.save(model, str(target))
    return count
