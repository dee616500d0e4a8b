"""The conv1d -> conv2d export pass: no 1-D convolution is left in the generator graph, and the
rewritten graph still matches PyTorch at three lengths (and the 1-D graph) to the plan's tolerance."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")



def _conv_weight_ranks(model) -> list[int]:
    """Rank of the initializer weight of every Conv / ConvTranspose node."""
    dims = {t.name: len(t.dims) for t in model.graph.initializer}
    return [dims[n.input[1]] for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose") and n.input[1] in dims]


@pytest.fixture(scope="module")
def generator_graphs(small_generator_onnx, tmp_path_factory):
    from svc_export.onnx_export import convs_as_2d

    torch.set_num_threads(1)
    plan, original = small_generator_onnx
    rewritten = tmp_path_factory.mktemp("conv2d") / "generator.onnx"
    shutil.copy(original, rewritten)
    count = convs_as_2d(rewritten)
    return plan, original, rewritten, count


def test_no_1d_convolution_left_in_the_generator(generator_graphs):
    _, original, rewritten, count = generator_graphs
    before = _conv_weight_ranks(onnx.load(str(original)))
    after = _conv_weight_ranks(onnx.load(str(rewritten)))
    assert before.count(3) > 10 and count == before.count(3)  # pre/post nets, flow WaveNets, decoder, NSF
    assert after.count(3) == 0
    assert after.count(4) == len(before)  # every convolution is still there, as a 2-D one


def test_rewritten_generator_matches_pytorch_at_three_lengths(generator_graphs):
    from svc_export.onnx_export import require_parity, torch_parity

    plan, _, rewritten, _ = generator_graphs
    results = torch_parity(plan, rewritten)
    assert len({r.length for r in results}) == 3
    require_parity(results)
    assert all(r.max_abs_error <= plan.tolerance[r.output] for r in results)


def test_rewritten_generator_matches_the_1d_graph(generator_graphs):
    from svc_export.onnx_export import ort_session

    plan, original, rewritten, _ = generator_graphs
    inputs = plan.make_inputs(plan.lengths[1], 7)
    feeds = {s.name: inputs[s.name].numpy() for s in plan.inputs}
    want = ort_session(original).run(["audio"], feeds)[0]
    got = ort_session(rewritten).run(["audio"], feeds)[0]
    assert got.shape == want.shape
    assert float(np.max(np.abs(got - want))) < 1e-5


def test_pass_is_idempotent_and_skips_graphs_without_1d_convolutions(generator_graphs, tmp_path):
    from svc_export.onnx_export import convs_as_2d

    _, _, rewritten, _ = generator_graphs
    again = tmp_path / "again.onnx"
    shutil.copy(rewritten, again)
    assert convs_as_2d(again) == 0
    assert again.read_bytes() == rewritten.read_bytes()


def test_shared_weight_and_transposed_conv_are_rewritten_once(tmp_path):
    from graph_counts import count_conv1d
    from onnx import TensorProto, helper, numpy_helper

    from svc_export.conv2d import rewrite_model
    from svc_export.onnx_export import ort_session

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 4, 3)).astype(np.float32), "w")
    wt = numpy_helper.from_array(rng.standard_normal((4, 2, 4)).astype(np.float32), "wt")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], name="c1", pads=[1, 1], dilations=[1]),
        helper.make_node("LeakyRelu", ["a"], ["b"], name="act", alpha=0.1),
        helper.make_node("Conv", ["b", "w"], ["c"], name="c2", pads=[2, 2], dilations=[2]),
        helper.make_node("Add", ["c", "x"], ["d"], name="res"),
        helper.make_node("ConvTranspose", ["d", "wt"], ["y"], name="up", strides=[2], pads=[1, 1]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, "t"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, "s"])], [w, wt],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    rewritten, count = rewrite_model(model)
    onnx.checker.check_model(rewritten, full_check=True)
    assert count == 3 and count_conv1d(rewritten) == 0
    assert sorted(t.name for t in rewritten.graph.initializer) == sorted(["w_as_2d", "wt_as_2d", "conv2d_pass_axis2"])
    x = rng.standard_normal((1, 4, 37)).astype(np.float32)
    paths = [tmp_path / "a.onnx", tmp_path / "b.onnx"]
    onnx.save(model, str(paths[0]))
    onnx.save(rewritten, str(paths[1]))
    want, got = (ort_session(p).run(["y"], {"x": x})[0] for p in paths)
    assert got.shape == want.shape == (1, 2, 74)
    assert float(np.max(np.abs(got - want))) < 2e-6 * float(np.max(np.abs(want)))  # float32 rounding only
