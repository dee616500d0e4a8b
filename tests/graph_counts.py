"""Node counts of ONNX graphs, for the graph-pass tests (what a pass rewrote, what it left)."""

from __future__ import annotations

import onnx


def count_conv1d(model: onnx.ModelProto) -> int:
    """Conv / ConvTranspose nodes whose weight is a rank-3 initializer (what the conv2d pass rewrites)."""
    dims = {t.name: len(t.dims) for t in model.graph.initializer}
    return sum(
        1 for n in model.graph.node
        if n.op_type in ("Conv", "ConvTranspose") and len(n.input) > 1 and dims.get(n.input[1]) == 3
    )


def count_conv_transpose(model: onnx.ModelProto) -> int:
    """ConvTranspose nodes left in ``model`` (the polyphase pass rewrites the eligible ones)."""
    return sum(1 for n in model.graph.node if n.op_type == "ConvTranspose")
