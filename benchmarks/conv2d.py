"""Experiment: run 1-D convolutions as 2-D ones ([B, C, T] -> [B, C, 1, T]) so ONNX Runtime's CPU
provider can use its blocked NCHWc convolution kernels, which it applies to 2-D convolutions only.

`conv1d_as_conv2d(model)` rewrites every Conv / ConvTranspose whose weight is a rank-3
initializer into Unsqueeze -> 2-D Conv -> Squeeze (same numbers, up to float rounding).
This belongs in the exporter (svc_export) if it pays off; here it is measured on a copy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper


def _attr(node: onnx.NodeProto, name: str):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return None


def conv1d_as_conv2d(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of `model` with 1-D Conv/ConvTranspose nodes as 2-D ones; returns (model, nodes rewritten)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    axes_name = "conv2d_rewrite_axis2"
    graph.initializer.append(numpy_helper.from_array(np.array([2], dtype=np.int64), axes_name))
    new_nodes = []
    count = 0
    for node in graph.node:
        weight = inits.get(node.input[1]) if node.op_type in ("Conv", "ConvTranspose") and len(node.input) > 1 else None
        if weight is None or len(weight.dims) != 3:
            new_nodes.append(node)
            continue
        count += 1
        w = numpy_helper.to_array(weight)
        w4_name = node.input[1] + "_as_2d"
        graph.initializer.append(numpy_helper.from_array(w[:, :, None, :].copy(), w4_name))
        x4 = node.output[0] + "_in4d"
        y4 = node.output[0] + "_out4d"
        new_nodes.append(helper.make_node("Unsqueeze", [node.input[0], axes_name], [x4], name=node.name + "_unsq"))
        attrs = {}
        kernel = _attr(node, "kernel_shape") or [w.shape[2]]
        attrs["kernel_shape"] = [1, int(kernel[0])]
        attrs["strides"] = [1, int((_attr(node, "strides") or [1])[0])]
        attrs["dilations"] = [1, int((_attr(node, "dilations") or [1])[0])]
        pads = _attr(node, "pads") or [0, 0]
        attrs["pads"] = [0, int(pads[0]), 0, int(pads[1])]
        group = _attr(node, "group")
        if group is not None:
            attrs["group"] = int(group)
        if node.op_type == "ConvTranspose":
            out_pad = _attr(node, "output_padding")
            if out_pad is not None:
                attrs["output_padding"] = [0, int(out_pad[0])]
        if _attr(node, "auto_pad") not in (None, b"NOTSET", "NOTSET"):
            raise ValueError(f"{node.name}: auto_pad is not supported by the rewrite")
        inputs = [x4, w4_name] + list(node.input[2:])
        new_nodes.append(helper.make_node(node.op_type, inputs, [y4], name=node.name + "_2d", **attrs))
        new_nodes.append(helper.make_node("Squeeze", [y4, axes_name], [node.output[0]], name=node.name + "_sq"))
    del graph.node[:]
    graph.node.extend(new_nodes)
    used = {i for n in graph.node for i in n.input}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return model, count


UNARY = {"LeakyRelu", "Relu", "Tanh", "Sigmoid", "Neg", "Identity"}
BINARY = {"Add", "Mul", "Sub", "Div"}


def _is_scalar(name: str, consts: dict[str, np.ndarray]) -> bool:
    return name in consts and consts[name].size == 1


def stay_2d(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Remove Squeeze -> elementwise -> Unsqueeze round trips between rewritten convolutions.

    Walks the (topologically sorted) graph keeping, for each [B, C, T] tensor, a [B, C, 1, T]
    twin where one exists; elementwise ops on twins (or on a twin and a scalar constant) get a
    4-D copy, and an Unsqueeze of a tensor with a twin is replaced by the twin. Nodes left
    without consumers are dropped. Returns (model, Unsqueeze nodes removed).
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(helper.get_attribute_value(node.attribute[0]))
    twin: dict[str, str] = {}
    rename: dict[str, str] = {}
    out_nodes = []
    removed = 0
    for node in graph.node:
        inputs = [rename.get(i, i) for i in node.input]
        del node.input[:]
        node.input.extend(inputs)
        is_ours = node.name.endswith(("_unsq", "_sq"))
        if node.op_type == "Unsqueeze" and is_ours and node.input[0] in twin:
            rename[node.output[0]] = twin[node.input[0]]
            removed += 1
            continue
        out_nodes.append(node)
        if node.op_type == "Unsqueeze" and is_ours:
            twin[node.input[0]] = node.output[0]
        elif node.op_type == "Squeeze" and is_ours:
            twin[node.output[0]] = node.input[0]
        elif node.op_type in UNARY and node.input[0] in twin:
            out4 = node.output[0] + "_4d"
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            out_nodes.append(helper.make_node(node.op_type, [twin[node.input[0]]], [out4], name=node.name + "_4d", **attrs))
            twin[node.output[0]] = out4
        elif node.op_type in BINARY and len(node.input) == 2:
            a, b = node.input
            if (a in twin or _is_scalar(a, consts)) and (b in twin or _is_scalar(b, consts)) and (a in twin or b in twin):
                out4 = node.output[0] + "_4d"
                out_nodes.append(helper.make_node(node.op_type, [twin.get(a, a), twin.get(b, b)], [out4],
                                                  name=node.name + "_4d"))
                twin[node.output[0]] = out4
    # graph outputs renamed away? keep their producers
    outputs = {o.name for o in graph.output}
    changed = True
    while changed:
        used = {i for n in out_nodes for i in n.input} | outputs
        kept = [n for n in out_nodes if any(o in used for o in n.output)]
        changed = len(kept) != len(out_nodes)
        out_nodes = kept
    del graph.node[:]
    graph.node.extend(out_nodes)
    return model, removed


def rewrite_file(source: Path, target: Path, keep_2d: bool = True) -> int:
    """Rewrite graph `source` into `target`; returns the number of convolutions rewritten."""
    model, count = conv1d_as_conv2d(onnx.load(str(source)))
    if keep_2d:
        model, _ = stay_2d(model)
    onnx.save(model, str(target))
    return count
