"""The ConvTranspose -> polyphase Conv pass (`svc_export.conv_transpose`): random ConvTranspose1d
layers (the generator's upsamplers and many other k, s, p) match PyTorch through ONNX Runtime in
both the 1-D and the conv2d pass's (1, k) form, and the whole fixture generator's audio matches
the unrewritten graph and PyTorch."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from graph_counts import count_conv_transpose  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from svc_export.conv_transpose import (  # noqa: E402
    conv_transpose_as_conv,
    polyphase_geometry,
    rewrite_file,
)

# (k, s, p, output_padding, C_in, C_out, T): the generator's (16, 8, 4) and (4, 2, 1) first, then
# kernels not divisible by the stride (zero taps), p >= s, p = 0, stride 1, output_padding.
CASES = [
    (16, 8, 4, 0, 32, 16, 11),
    (4, 2, 1, 0, 16, 16, 23),
    (16, 8, 4, 0, 5, 3, 1),
    (4, 2, 1, 0, 3, 2, 1),
    (10, 5, 3, 0, 6, 4, 9),
    (5, 2, 2, 1, 3, 3, 6),
    (7, 3, 0, 2, 2, 5, 4),
    (3, 1, 1, 0, 4, 2, 5),
    (6, 3, 5, 0, 2, 2, 8),
    (8, 4, 0, 0, 3, 2, 3),
    (11, 5, 9, 0, 2, 3, 9),
    (20, 10, 5, 0, 4, 4, 7),
    (2, 2, 0, 0, 3, 3, 5),
    (9, 4, 2, 3, 2, 2, 6),
]


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(["y"], {"x": x})[0]


def _conv_transpose_model(layer: torch.nn.ConvTranspose1d, rank: int, batch: int) -> onnx.ModelProto:
    """One ConvTranspose node with `layer`'s weights, 1-D (rank 3) or in the (1, k) form (rank 4)."""
    k, s, p, op = layer.kernel_size[0], layer.stride[0], layer.padding[0], layer.output_padding[0]
    w = layer.weight.detach().numpy()
    attrs = {"kernel_shape": [k], "strides": [s], "pads": [p, p]}
    if op:
        attrs["output_padding"] = [op]
    x_shape, y_shape = [batch, layer.in_channels, "t"], [batch, layer.out_channels, "u"]
    if rank == 4:
        w = w[:, :, None, :]
        attrs = {"kernel_shape": [1, k], "strides": [1, s], "pads": [0, p, 0, p]}
        if op:
            attrs["output_padding"] = [0, op]
        x_shape, y_shape = [batch, layer.in_channels, 1, "t"], [batch, layer.out_channels, 1, "u"]
    graph = helper.make_graph(
        [helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], name="/dec/ups.0/ConvTranspose", **attrs)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        [numpy_helper.from_array(np.ascontiguousarray(w), "w"), numpy_helper.from_array(layer.bias.detach().numpy(), "b")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("rank", [3, 4])
@pytest.mark.parametrize("k, s, p, op, c_in, c_out, t", CASES)
def test_rewritten_conv_transpose_matches_pytorch(k, s, p, op, c_in, c_out, t, rank):
    torch.manual_seed(k * 1000 + s * 100 + p * 10 + op)
    layer = torch.nn.ConvTranspose1d(c_in, c_out, k, s, padding=p, output_padding=op).eval()
    x = torch.randn(2, c_in, t)
    with torch.no_grad():
        want = layer(x).numpy()
    model = _conv_transpose_model(layer, rank, batch=2)
    rewritten, count = conv_transpose_as_conv(model)
    onnx.checker.check_model(rewritten, full_check=True)
    assert count == 1 and count_conv_transpose(rewritten) == 0
    assert {n.op_type for n in rewritten.graph.node} <= {"Conv", "Reshape", "Transpose", "Slice"}
    assert all(n.name.startswith("/dec/ups.0/ConvTranspose/polyphase_") for n in rewritten.graph.node)
    feed = x.numpy() if rank == 3 else x.numpy()[:, :, None, :]
    got = _run(rewritten, feed)
    got = got if rank == 3 else got[:, :, 0, :]
    assert got.shape == want.shape  # lengths to the sample: (T-1)s + k - 2p + output_padding
    assert float(np.max(np.abs(got - want))) <= 1e-5 * float(np.max(np.abs(want)))


def test_generator_upsamplers_have_no_zero_taps():
    """When s divides k the polyphase kernel holds ceil(k/s) real taps: no extra multiply-adds."""
    for k, s, p in ((16, 8, 4), (4, 2, 1)):
        geo = polyphase_geometry(k, s, p, p)
        assert geo is not None and geo["taps"] * s == k
    layer = torch.nn.ConvTranspose1d(4, 3, 16, 8, padding=4)
    rewritten, _ = conv_transpose_as_conv(_conv_transpose_model(layer, 3, 1))
    weight = next(numpy_helper.to_array(t) for t in rewritten.graph.initializer if t.name == "w/polyphase_s8")
    assert weight.shape == (3 * 8, 4, 2)
    assert sorted(np.abs(weight).ravel().tolist()) == sorted(np.abs(layer.weight.detach().numpy()).ravel().tolist())


def test_shared_weight_is_rewritten_once_per_stride():
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 4)).astype(np.float32), "w")
    nodes = [
        helper.make_node("ConvTranspose", ["x", "w"], ["a"], name="up_a", strides=[2], pads=[1, 1]),
        helper.make_node("ConvTranspose", ["x", "w"], ["b"], name="up_b", strides=[2], pads=[1, 1]),
        helper.make_node("ConvTranspose", ["x", "w"], ["c"], name="up_c", strides=[4], pads=[0, 0]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, "t"])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, n]) for n in "abc"], [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    rewritten, count = conv_transpose_as_conv(model)
    onnx.checker.check_model(rewritten, full_check=True)
    assert count == 3
    weights = sorted(t.name for t in rewritten.graph.initializer if t.name.startswith("w/"))
    assert weights == ["w/polyphase_s2", "w/polyphase_s4"]
    x = rng.standard_normal((1, 4, 9)).astype(np.float32)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    want = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = ort.InferenceSession(rewritten.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    for g, e in zip(got, want):
        assert g.shape == e.shape and float(np.max(np.abs(g - e))) <= 1e-5 * float(np.max(np.abs(e)))


def test_unsupported_conv_transposes_are_left_alone():
    rng = np.random.default_rng(0)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, "t"])]
    nodes, inits = [], []
    for name, attrs, shape in (
        ("grouped", {"strides": [2], "pads": [1, 1], "group": 2}, (4, 2, 4)),
        ("dilated", {"strides": [2], "pads": [1, 1], "dilations": [2]}, (4, 2, 4)),
        ("same", {"strides": [2], "auto_pad": "SAME_UPPER"}, (4, 2, 4)),
        ("wide_pad", {"strides": [2], "pads": [6, 0]}, (4, 2, 4)),  # floor(p/s) >= ceil(k/s)
    ):
        inits.append(numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), f"w_{name}"))
        nodes.append(helper.make_node("ConvTranspose", ["x", f"w_{name}"], [name], name=name, **attrs))
    outputs = [helper.make_tensor_value_info(n.output[0], TensorProto.FLOAT, None) for n in nodes]
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    rewritten, count = conv_transpose_as_conv(model)
    assert count == 0 and count_conv_transpose(rewritten) == 4


@pytest.fixture(scope="module")
def generator_graphs(small_generator_onnx, tmp_path_factory):
    from svc_export.onnx_export import convs_as_2d

    torch.set_num_threads(1)
    plan, traced = small_generator_onnx
    work = tmp_path_factory.mktemp("polyphase")
    original, rewritten = work / "generator.2d.onnx", work / "generator.onnx"
    shutil.copy(traced, original)
    convs_as_2d(original)  # the exporter's order: conv2d first, then this pass on the (1, k) form
    shutil.copy(original, rewritten)
    count = rewrite_file(rewritten)
    return plan, original, rewritten, count


def test_no_conv_transpose_left_in_the_generator(generator_graphs):
    _, original, rewritten, count = generator_graphs
    ups = count_conv_transpose(onnx.load(str(original)))
    assert ups >= 2 and count == ups
    assert count_conv_transpose(onnx.load(str(rewritten))) == 0


def test_rewritten_generator_matches_the_unrewritten_graph(generator_graphs):
    from svc_export.onnx_export import ort_session

    plan, original, rewritten, _ = generator_graphs
    for length in plan.lengths:
        inputs = plan.make_inputs(length, 11)
        feeds = {s.name: inputs[s.name].numpy() for s in plan.inputs}
        want = ort_session(original).run(["audio"], feeds)[0]
        got = ort_session(rewritten).run(["audio"], feeds)[0]
        assert got.shape == want.shape
        assert float(np.max(np.abs(want))) > 1e-3  # real audio, not silence
        assert float(np.max(np.abs(got - want))) <= 1e-5


def test_rewritten_generator_matches_pytorch(generator_graphs):
    from svc_export.onnx_export import require_parity, torch_parity

    plan, _, rewritten, _ = generator_graphs
    results = torch_parity(plan, rewritten)
    require_parity(results)
    assert all(r.max_abs_error <= plan.tolerance[r.output] for r in results)


def test_rewrite_file_is_idempotent(generator_graphs, tmp_path):
    _, _, rewritten, _ = generator_graphs
    again = tmp_path / "again.onnx"
    shutil.copy(rewritten, again)
    assert rewrite_file(again) == 0
    assert again.read_bytes() == rewritten.read_bytes()


def test_exporter_records_the_pass_in_the_manifest():
    from svc_export.auto_f0_branch import PASS_NAME as AUTO_F0
    from svc_export.conv_transpose import PASS_NAME
    from svc_export.exporter import _versions

    passes = _versions(17)["graph_passes"].split(",")
    assert passes == ["conv1d_as_conv2d", PASS_NAME, AUTO_F0]  # the order the exporter applies them
