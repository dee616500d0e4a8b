"""Graph pass: run strided ConvTranspose nodes (HiFiGAN's upsamplers) as ordinary convolutions.

ONNX Runtime's CPU ConvTranspose is im2col / col2im based and several times slower per FLOP than
its blocked NCHWc Conv. A transposed convolution with stride s is s interleaved ordinary
convolutions (polyphase form), so `conv_transpose_as_conv` rewrites

    ConvTranspose(x [B, C_in, (1,) T], W [C_in, C_out, (1,) k], stride s, pads (p0, p1))

into one Conv with C_out*s output channels and a kernel of N = ceil(k/s) taps, then a
depth-to-space along time (Reshape -> Transpose -> Reshape) and a Slice:

    y[t] = sum_i x[i] W[t + p0 - i*s]                    (the transposed convolution)
    Z[q*s + r] = sum_n x[q + A - n] W[n*s + r]           (r < s, n < N, A = p0 // s)
    y[t] = Z[t + p0 % s]

Writing the output shifted by e = p0 % s lines every phase up on the same N input offsets, so
when s divides k every tap of the new kernel is a real weight (no zero taps, the same FLOPs as
the transposed convolution); otherwise the missing taps are zeros. The sums are the same, so
the numbers are the same up to float rounding.

Rewritten: ConvTranspose nodes of rank 3, or rank 4 with a (1, k) kernel (the `conv2d` pass's
form), whose weight is an initializer, group 1, dilation 1, no auto_pad / output_shape. Others
are left unchanged. Node names keep their module path (name + "/polyphase_*").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from svc_export.graph_files import copy_model, replace_if_valid

NAME_SUFFIX = "/polyphase"
"""Every node the pass inserts is named <ConvTranspose name> + this + a step name."""
PASS_NAME = "conv_transpose_as_conv"
"""The pass's name as recorded in a bundle manifest's exporter.graph_passes."""

_INT64_MAX = np.iinfo(np.int64).max


def _attr(node: onnx.NodeProto, name: str):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return None


def polyphase_geometry(k: int, s: int, pad_begin: int, pad_end: int, output_padding: int = 0) -> dict[str, int] | None:
    """How a 1-D ConvTranspose (kernel k, stride s, pads, output_padding) runs as a Conv; None when
    the rewrite does not apply (a negative left pad of the Conv).

    Returns taps N, conv pads (left, right), the output shift e (first sample of Z to keep) and
    tail (samples of Z to drop at the end), all independent of the input length T.
    """
    if k < 1 or s < 1 or output_padding < 0 or output_padding >= s:
        return None
    taps = -(-k // s)
    a, shift = divmod(pad_begin, s)
    left = taps - 1 - a
    if left < 0:
        return None
    reach = k - pad_end + output_padding  # e + L_out = (T - 1 - a) s + reach
    if reach < 1:
        return None
    right = -(-reach // s) - 1
    tail = s * (right + 1) - reach
    return {"taps": taps, "left": left, "right": right, "shift": shift, "tail": tail}


def polyphase_weight(weight: np.ndarray, s: int) -> np.ndarray:
    """ConvTranspose weight [C_in, C_out, k] -> Conv weight [C_out*s, C_in, N], N = ceil(k/s).

    Output channel o*s + r, tap u holds W[:, o, (N-1-u)*s + r] (zero past the kernel's end).
    """
    c_in, c_out, k = weight.shape
    taps = -(-k // s)
    padded = np.zeros((c_in, c_out, taps * s), dtype=weight.dtype)
    padded[:, :, :k] = weight
    # [C_in, C_out, n, r] with j = n*s + r; the conv's tap u reads offset A - n, so u = N-1-n
    per_phase = padded.reshape(c_in, c_out, taps, s)[:, :, ::-1, :]
    return np.ascontiguousarray(per_phase.transpose(1, 3, 0, 2).reshape(c_out * s, c_in, taps))


def _rewrite_node(node: onnx.NodeProto, weight: np.ndarray, bias: np.ndarray | None, graph: onnx.GraphProto,
                  consts: dict[str, str]) -> list[onnx.NodeProto] | None:
    """The nodes replacing one ConvTranspose (new initializers appended to `graph`, their names
    added to `consts` so shared ones are added once), or None when the node is not eligible."""
    rank = weight.ndim
    if rank not in (3, 4) or int(_attr(node, "group") or 1) != 1:
        return None
    if rank == 4 and weight.shape[2] != 1:
        return None
    if _attr(node, "auto_pad") not in (None, b"NOTSET", "NOTSET") or _attr(node, "output_shape") is not None:
        return None
    spatial = rank - 2
    strides = list(_attr(node, "strides") or [1] * spatial)
    dilations = list(_attr(node, "dilations") or [1] * spatial)
    pads = list(_attr(node, "pads") or [0] * (2 * spatial))
    out_pad = list(_attr(node, "output_padding") or [0] * spatial)
    if any(d != 1 for d in dilations):
        return None
    if rank == 4 and (strides[0] != 1 or pads[0] != 0 or pads[2] != 0 or out_pad[0] != 0):
        return None
    s, p0, p1, op = int(strides[-1]), int(pads[spatial - 1]), int(pads[-1]), int(out_pad[-1])
    w3 = weight.reshape(weight.shape[0], weight.shape[1], weight.shape[-1])
    c_out, k = w3.shape[1], w3.shape[2]
    geo = polyphase_geometry(k, s, p0, p1, op)
    if geo is None:
        return None
    base = node.name or node.output[0]
    w_conv = polyphase_weight(w3, s)
    if rank == 4:
        w_conv = w_conv[:, :, None, :]
    w_name = f"{node.input[1]}{NAME_SUFFIX}_s{s}"
    if w_name not in consts:  # a weight shared by several upsamplers of the same stride is rewritten once
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w_conv), w_name))
        consts[w_name] = w_name
    conv_inputs = [node.input[0], w_name]
    if bias is not None:
        b_name = f"{node.input[2]}{NAME_SUFFIX}_s{s}"
        if b_name not in consts:
            graph.initializer.append(numpy_helper.from_array(np.repeat(bias, s).astype(bias.dtype), b_name))
            consts[b_name] = b_name
        conv_inputs.append(b_name)
    taps = geo["taps"]
    conv_attrs = {
        "kernel_shape": [1, taps] if rank == 4 else [taps],
        "pads": [0, geo["left"], 0, geo["right"]] if rank == 4 else [geo["left"], geo["right"]],
        "strides": [1, 1] if rank == 4 else [1],
        "dilations": [1, 1] if rank == 4 else [1],
        "group": 1,
    }

    def const(values: list[int]) -> str:
        key = f"polyphase_const_{'_'.join(str(v) for v in values)}".replace("-", "m")
        if key not in consts:
            graph.initializer.append(numpy_helper.from_array(np.array(values, dtype=np.int64), key))
            consts[key] = key
        return key

    out = node.output[0]
    phases, grouped, interleaved, flat = (f"{out}{NAME_SUFFIX}_{n}" for n in ("phases", "grouped", "interleaved", "flat"))
    # conv out [B, C_out*s, (1,) Q] -> [B, C_out, s, Q] -> [B, C_out, Q, s] -> [B, C_out, (1,) Q*s]
    nodes = [
        helper.make_node("Conv", conv_inputs, [phases], name=f"{base}{NAME_SUFFIX}_conv", **conv_attrs),
        helper.make_node("Reshape", [phases, const([0, c_out, s, -1])], [grouped], name=f"{base}{NAME_SUFFIX}_split"),
        helper.make_node("Transpose", [grouped], [interleaved], name=f"{base}{NAME_SUFFIX}_interleave", perm=[0, 1, 3, 2]),
        helper.make_node("Reshape", [interleaved, const([0, 0, 1, -1] if rank == 4 else [0, 0, -1])], [flat],
                         name=f"{base}{NAME_SUFFIX}_merge"),
    ]
    end = -geo["tail"] if geo["tail"] else _INT64_MAX
    if geo["shift"] == 0 and geo["tail"] == 0:
        nodes[-1].output[0] = out
    else:
        nodes.append(helper.make_node(
            "Slice", [flat, const([geo["shift"]]), const([end]), const([rank - 1])], [out], name=f"{base}{NAME_SUFFIX}_crop"
        ))
    return nodes


def conv_transpose_as_conv(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of `model` with its eligible ConvTranspose nodes as Conv + depth-to-space; (model, nodes rewritten)."""
    model = copy_model(model)  # not through bytes: a graph past 2 GiB cannot be serialised
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consts: dict[str, str] = {name: name for name in inits if name.startswith("polyphase_const_") or NAME_SUFFIX in name}
    new_nodes = []
    count = 0
    for node in graph.node:
        is_ct = node.op_type == "ConvTranspose" and node.domain in ("", "ai.onnx") and len(node.input) > 1
        weight = inits.get(node.input[1]) if is_ct else None
        bias = inits.get(node.input[2]) if is_ct and len(node.input) > 2 and node.input[2] else None
        if weight is None or (is_ct and len(node.input) > 2 and node.input[2] and bias is None):
            new_nodes.append(node)
            continue
        w = numpy_helper.to_array(weight)
        b = numpy_helper.to_array(bias) if bias is not None else None
        if w.dtype not in (np.float32, np.float64, np.float16):
            new_nodes.append(node)
            continue
        nodes = _rewrite_node(node, w, b, graph, consts)
        if nodes is None:
            new_nodes.append(node)
            continue
        new_nodes.extend(nodes)
        count += 1
    del graph.node[:]
    graph.node.extend(new_nodes)
    if count:
        used = {i for n in graph.node for i in n.input} | _subgraph_inputs(graph)
        keep = [t for t in graph.initializer if t.name in used]
        del graph.initializer[:]
        graph.initializer.extend(keep)
    return model, count


def _subgraph_inputs(graph: onnx.GraphProto) -> set[str]:
    used: set[str] = set()
    for node in graph.node:
        for a in node.attribute:
            subs = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
            for sub in subs:
                used |= {i for n in sub.node for i in n.input} | _subgraph_inputs(sub)
    return used


def rewrite_file(path: Path) -> int:
    """Apply `conv_transpose_as_conv` to graph `path` in place; the number of nodes rewritten.

    The result replaces the file only when it passes the ONNX checker (else the file is kept,
    with a warning). Runs before the exporter's parity checks, which prove it.
    """
    model, count = conv_transpose_as_conv(onnx.load(str(path)))
    if count == 0:
        return 0
    valid = replace_if_valid(path, model, ".polyphase.onnx",
                             "the ConvTranspose -> Conv pass made an invalid graph of {name} ({error}); kept the original")
    return count if valid else 0
