"""The OpenVINO backend (`ProviderConfig(provider="openvino")`): configuration, the same graphs and
outputs as ONNX Runtime (fp32 parity, bf16 SNR), int64 tensors, the model cache, a missing package.

Measured here (sovits41_small fixture generator, OpenVINO 2026.4 vs ONNX Runtime 1.32, fp32):
max |diff| 7.3e-6 on audio peaking at 0.94 (112 dB SNR); a freshly initialised sovits41_small
generator: 140 dB in fp32, 74-78 dB in bf16.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from svc_runtime.bundle import openvino_session
from svc_runtime.bundle.openvino_session import compile_config
from svc_runtime.bundle.sessions import ProviderConfig, ProviderUnavailableError, open_session
from svc_runtime.signal.quality import snr_db

FIXTURES = Path(__file__).parent / "fixtures"
HAS_OPENVINO = openvino_session.openvino_available()
needs_openvino = pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is not installed (pip install openvino)")


# --------------------------------------------------------------------------- configuration (no openvino needed)


def test_config_validates_openvino_settings():
    assert ProviderConfig(provider="openvino").on_gpu is False
    assert ProviderConfig(provider="openvino", inference_precision="bf16").inference_precision == "bf16"
    with pytest.raises(ValueError, match="needs provider 'openvino'"):
        ProviderConfig(provider="cpu", inference_precision="bf16")
    with pytest.raises(ValueError, match="inference_precision must be one of fp32, bf16"):
        ProviderConfig(provider="openvino", inference_precision="fp16")
    with pytest.raises(ValueError, match="performance_hint must be one of latency, throughput"):
        ProviderConfig(provider="openvino", performance_hint="fast")
    with pytest.raises(ValueError, match="does not run on ONNX Runtime"):
        ProviderConfig(provider="openvino").ort_providers()


def test_compile_config_always_sets_the_precision(tmp_path, monkeypatch):
    """OpenVINO's own default on a bf16 CPU is bf16: fp32 must be asked for explicitly."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    default = compile_config(ProviderConfig(provider="openvino"))
    assert default == {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f32",
        "CACHE_DIR": str(tmp_path / "svc-toolkit" / "openvino"),
    }
    tuned = compile_config(ProviderConfig(provider="openvino", intra_op_threads=2, inference_precision="bf16",
                                          performance_hint="throughput", ov_cache_dir=""))
    assert tuned == {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": "2"}
    # bf16 never uses the model cache (a cached bf16 conversion graph ran to NaN audio on OpenVINO 2026.4)
    assert "CACHE_DIR" not in compile_config(ProviderConfig(provider="openvino", inference_precision="bf16"))


def test_missing_openvino_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now raises ImportError
    openvino_session._core.cache_clear()
    try:
        with pytest.raises(ProviderUnavailableError, match=r"pip install .*openvino"):
            open_session("generator", tmp_path / "generator.onnx", ProviderConfig(provider="openvino"))
        assert openvino_session.openvino_available() is False
    finally:
        openvino_session._core.cache_clear()


# --------------------------------------------------------------------------- int64 tensors


@pytest.fixture(scope="module")
def int64_graph(tmp_path_factory):
    """x [batch, n] float, ids [batch, n] int64 -> ids + 1 (int64), x * ids (float), Shape(x) (int64)."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["ids", "one"], ["ids_next"]),
            helper.make_node("Cast", ["ids"], ["ids_float"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["x", "ids_float"], ["y"]),
            helper.make_node("Shape", ["x"], ["shape"]),
        ],
        "int64_io",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n"]),
         helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "n"])],
        [helper.make_tensor_value_info("ids_next", TensorProto.INT64, ["batch", "n"]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "n"]),
         helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
        [helper.make_tensor("one", TensorProto.INT64, [], [1])],
    )
    path = tmp_path_factory.mktemp("int64") / "int64_io.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@needs_openvino
def test_int64_inputs_and_outputs_pass_through(int64_graph):
    ours = open_session("g", int64_graph, ProviderConfig(provider="openvino", ov_cache_dir=""))
    ort = open_session("g", int64_graph, ProviderConfig())
    assert (ours.input_names, ours.output_names) == (ort.input_names, ort.output_names)
    assert ours.provider.startswith("OpenVINO CPU (fp32")
    for batch, n in ((1, 3), (2, 7)):  # one compiled model, any shape along the dynamic axes
        feeds = {"x": np.linspace(-1, 1, batch * n, dtype=np.float32).reshape(batch, n),
                 "ids": np.arange(batch * n).reshape(batch, n) * 300_000_000 - 2_000_000_000}
        got, want = ours.run(feeds), ort.run(feeds)
        for name in ort.output_names:
            assert got[name].dtype == want[name].dtype, name
            np.testing.assert_array_equal(got[name], want[name])
    with pytest.raises(ValueError, match="input ids holds int64 values beyond the int32 range"):
        ours.run({"x": np.zeros((1, 1), np.float32), "ids": np.array([[1 << 40]])})
    with pytest.raises(ValueError, match=r"missing inputs \['ids'\]"):
        ours.run({"x": np.zeros((1, 1), np.float32)})


@needs_openvino
def test_graph_computing_int64_beyond_int32_is_refused(tmp_path):
    """A fixed-point phase modulo 2^40 (as schema-2 conversion graphs carried it in int64) would wrap in
    OpenVINO's int32; schema 3 carries it in int32 limbs (tests/test_openvino_converter.py)."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["phase", "step"], ["sum"]), helper.make_node("Mod", ["sum", "one"], ["phase_out"]),
         helper.make_node("Slice", ["phase", "zero", "no_end"], ["tail"])],
        "wide",
        [helper.make_tensor_value_info("phase", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("phase_out", TensorProto.INT64, ["n"]),
         helper.make_tensor_value_info("tail", TensorProto.INT64, ["m"])],
        [helper.make_tensor("step", TensorProto.INT64, [], [3]),
         helper.make_tensor("one", TensorProto.INT64, [], [1 << 40]),
         helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
         helper.make_tensor("no_end", TensorProto.INT64, [1], [np.iinfo(np.int64).max - 1])],
    )
    path = tmp_path / "wide.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert openvino_session.wide_int64_constants(path) == ["one"]  # the Slice bound is not counted
    with pytest.raises(ProviderUnavailableError, match=r"graph wide \(wide.onnx\) computes int64 values beyond "
                       r"the int32 range \(constants one\).*provider 'cpu'"):
        open_session("wide", path, ProviderConfig(provider="openvino", ov_cache_dir=""))
    assert open_session("wide", path, ProviderConfig()).run({"phase": np.array([(1 << 40) - 1])})["phase_out"] == [2]


# --------------------------------------------------------------------------- the generator


def _generator_feeds(plan, frames: int, seed: int) -> dict[str, np.ndarray]:
    return {name: value.numpy() for name, value in plan.make_inputs(frames, seed).items()}


@needs_openvino
def test_fp32_generator_matches_onnx_runtime(small_generator_onnx):
    plan, path = small_generator_onnx
    ort = open_session("generator", path, ProviderConfig(intra_op_threads=1))
    ours = open_session("generator", path, ProviderConfig(provider="openvino", intra_op_threads=1, ov_cache_dir=""))
    assert ours.input_names == ort.input_names and ours.output_names == ("audio",)
    for frames, seed in ((40, 0), (200, 1), (57, 2)):  # seed 2: batch 2
        feeds = _generator_feeds(plan, frames, seed)
        want, got = ort.run(feeds)["audio"], ours.run(feeds)["audio"]
        assert got.shape == want.shape == (feeds["c"].shape[0], 1, frames * 512)
        assert np.abs(got - want).max() < 1e-4  # measured 2e-6 .. 7e-6
        assert snr_db(want, got) > 100  # measured 112 dB


@pytest.fixture(scope="module")
def fresh_bundle(tmp_path_factory):
    """A generator-only bundle of a freshly initialised sovits41_small model (what `svc-train init` writes)."""
    torch = pytest.importorskip("torch")
    from svc_export.exporter import ExportRequest, export_bundle
    from svc_train.checkpoint import build_generator, save_checkpoint

    work = tmp_path_factory.mktemp("fresh")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    config = json.loads((FIXTURES / "sovits41_small" / "config.json").read_text())
    (work / "config.json").write_text(json.dumps(config))
    torch.manual_seed(1234)
    save_checkpoint(work / "G.pth", build_generator(work / "config.json"), 0, 1e-4)
    export_bundle(ExportRequest(checkpoint=work / "G.pth", config=work / "config.json", output=work / "bundle",
                                simplify=False))
    torch.set_num_threads(previous)
    return work / "bundle"


def _generate(bundle, frames: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    t = np.arange(frames) / frames
    f0 = (220 * 2 ** np.sin(2 * np.pi * t))[None].astype(np.float32)
    c = rng.standard_normal((1, 768, frames)).astype(np.float32)
    return bundle.generate(c, f0, (f0 > 0).astype(np.float32), np.array([0]), noise_scale=0.35)


@needs_openvino
def test_bundle_loads_every_generator_graph_on_openvino(fresh_bundle, tmp_path):
    from svc_runtime import Bundle

    ort = Bundle.load(fresh_bundle, ProviderConfig(intra_op_threads=1))
    ours = Bundle.load(fresh_bundle, ProviderConfig(provider="openvino", intra_op_threads=1,
                                                    ov_cache_dir=str(tmp_path / "cache")))
    assert ours.precision == "fp32" and set(ours.sessions) == set(ort.sessions)
    assert all(s.provider.startswith("OpenVINO") for s in ours.sessions.values())
    want, got = _generate(ort, 120), _generate(ours, 120)
    assert snr_db(want, got) > 120  # measured 140 dB
    assert any((tmp_path / "cache").iterdir()), "OpenVINO wrote no compiled model to its cache"
    again = Bundle.load(fresh_bundle, ProviderConfig(provider="openvino", intra_op_threads=1,
                                                     ov_cache_dir=str(tmp_path / "cache")), roles=("generator",))
    np.testing.assert_array_equal(_generate(again, 120), got)  # the cached compiled model computes the same


@needs_openvino
def test_bf16_generator_snr(fresh_bundle):
    if not openvino_session.cpu_has_bf16():
        pytest.skip("this CPU has no native bf16 (lscpu avx512_bf16 / amx_bf16)")
    from svc_runtime import Bundle

    fp32 = Bundle.load(fresh_bundle, ProviderConfig(provider="openvino", intra_op_threads=1, ov_cache_dir=""),
                       roles=("generator",))
    bf16 = Bundle.load(fresh_bundle, ProviderConfig(provider="openvino", intra_op_threads=1, ov_cache_dir="",
                                                    inference_precision="bf16"), roles=("generator",))
    provider = bf16.sessions["generator"].provider
    assert "bf16" in provider and "/m_source/ in f32" in provider and "/pitch/" not in provider
    snr = snr_db(_generate(fp32, 120), _generate(bf16, 120))
    assert 40 < snr < 120  # measured 74-78 dB: bf16 really computes in bf16, and stays close
