"""bf16 on OpenVINO keeps the pitch network in f32 (`openvino_session.F32_ISLANDS`): the graph is cut where
tensors leave the ops under those scopes, the island is compiled in f32 and the rest in bf16.

On the standard-size random model's conversion graph this took bf16 from 22.7 dB to 41 dB SNR against
ONNX Runtime fp32 (F0 within 0.0005 Hz instead of ~1.1 Hz; benchmarks/results/backends_converter.json).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from svc_runtime.bundle import openvino_session
from svc_runtime.bundle.sessions import ProviderConfig, open_session

HAS_OPENVINO = openvino_session.openvino_available()
needs_openvino = pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is not installed (pip install openvino)")
WIDTH = 64


def _tone_graph(path, pitch_scope: str = "/pitch/") -> None:
    """x [batch, frames, 64] -> a 'pitch network' (MatMul, Sigmoid, scale to Hz, under `pitch_scope`) -> `f0_hz`
    -> `f0` (a graph output, through /core/f0_track/) and a 'generator' (/core/dec/: MatMul with the input) -> `audio`.
    (OpenVINO's ONNX frontend names an op that makes a graph output after that output, so the island's last op
    feeds /core/ here, as in the conversion graph.)"""
    rng = np.random.default_rng(0)
    w_pitch = helper.make_tensor("w_pitch", TensorProto.FLOAT, (WIDTH, WIDTH),
                                 (rng.standard_normal((WIDTH, WIDTH)) / 8).astype(np.float32).ravel())
    w_core = helper.make_tensor("w_core", TensorProto.FLOAT, (WIDTH, WIDTH),
                                (rng.standard_normal((WIDTH, WIDTH)) / 8).astype(np.float32).ravel())
    hz = helper.make_tensor("hz", TensorProto.FLOAT, (), [440.0])
    nodes = [
        helper.make_node("MatMul", ["x", "w_pitch"], ["salience_logits"], name=f"{pitch_scope}net/MatMul"),
        helper.make_node("Sigmoid", ["salience_logits"], ["salience"], name=f"{pitch_scope}net/Sigmoid"),
        helper.make_node("Mul", ["salience", "hz"], ["f0_hz"], name=f"{pitch_scope}decoder/Mul"),
        helper.make_node("Relu", ["f0_hz"], ["f0"], name="/core/f0_track/Relu"),
        helper.make_node("MatMul", ["x", "w_core"], ["hidden"], name="/core/dec/MatMul"),
        helper.make_node("Mul", ["hidden", "f0_hz"], ["audio"], name="/core/dec/Mul"),
    ]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", "frames", WIDTH]) for n in ("x", "f0", "audio")]
    graph = helper.make_graph(nodes, "tone", [io[0]], io[1:], initializer=[w_pitch, w_core, hz])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _reference(x: np.ndarray, path) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip(("f0", "audio"), session.run(["f0", "audio"], {"x": x})))


@needs_openvino
def test_the_graph_is_cut_where_the_pitch_network_hands_over(tmp_path):
    _tone_graph(tmp_path / "g.onnx")
    island, rest, found = openvino_session.split_f32_islands(tmp_path / "g.onnx")
    assert found == ("/pitch/",)  # the tone graph has no NSF source convolutions
    assert [p.get_any_name() for p in island.inputs] == ["x"]
    assert [o.get_any_name() for o in island.outputs] == ["f32_island:0"]
    assert sorted(n for p in rest.inputs for n in p.get_names()) == ["f0_hz", "f32_island:0", "x"]
    assert not any("/pitch/" in op.get_friendly_name() for op in rest.get_ops())


@needs_openvino
def test_a_graph_without_the_scopes_is_not_cut(tmp_path):
    _tone_graph(tmp_path / "g.onnx", pitch_scope="/other/")
    assert openvino_session.split_f32_islands(tmp_path / "g.onnx") is None


@needs_openvino
def test_bf16_runs_the_pitch_scopes_in_f32(tmp_path):
    if not openvino_session.cpu_has_bf16():
        pytest.skip("this CPU has no native bf16 (lscpu avx512_bf16 / amx_bf16)")
    path = tmp_path / "g.onnx"
    _tone_graph(path)
    config = ProviderConfig(provider="openvino", intra_op_threads=1, inference_precision="bf16", ov_cache_dir="")
    session = open_session("converter", path, config)
    assert session.f32_island is not None and "/pitch/ in f32" in session.provider

    def precisions(compiled, scope):
        found = set()
        for op in compiled.get_runtime_model().get_ops():
            info = op.get_rt_info()
            if scope in info["originalLayersNames"].astype(str):
                found.add(info["runtimePrecision"].astype(str))
        return found

    assert precisions(session.f32_island, "/pitch/") == {"f32"}
    assert "bf16" in precisions(session._compiled, "/core/")  # the rest really is bf16

    x = np.random.default_rng(1).standard_normal((2, 50, WIDTH)).astype(np.float32)
    out, ref = session.run({"x": x}), _reference(x, path)
    np.testing.assert_allclose(out["f0"], ref["f0"], rtol=1e-5, atol=1e-3)  # f32: Hz within 1e-3
    error = np.abs(out["audio"] - ref["audio"]).max() / np.abs(ref["audio"]).max()
    assert 0 < error < 0.05  # bf16 in /core/: close, not exact


@needs_openvino
def test_fp32_sessions_are_not_split(tmp_path):
    path = tmp_path / "g.onnx"
    _tone_graph(path)
    session = open_session("converter", path, ProviderConfig(provider="openvino", intra_op_threads=1, ov_cache_dir=""))
    assert session.f32_island is None
    x = np.random.default_rng(2).standard_normal((1, 7, WIDTH)).astype(np.float32)
    np.testing.assert_allclose(session.run({"x": x})["audio"], _reference(x, path)["audio"], rtol=1e-4, atol=1e-4)
