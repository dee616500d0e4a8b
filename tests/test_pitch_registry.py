"""The pitch-method registry and the one salience decoder every neural method goes through."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from svc_runtime.pitch import extract
from svc_runtime.pitch.decode import (
    FCPE_F0_RANGE,
    SalienceDecoder,
    cents_to_hz,
    decode_crepe,
    decode_fcpe,
    decode_rmvpe,
    fcpe_bin_cents,
    rmvpe_bin_cents,
)
from svc_runtime.pitch.methods import CLASSIC_METHODS, NEURAL_METHODS, PITCH_METHODS, REGISTRY, pitch_method


def test_registry_holds_so_vits_svc_41s_methods_and_defaults():
    assert PITCH_METHODS == CLASSIC_METHODS + NEURAL_METHODS == ("harvest", "dio", "pm", "rmvpe", "fcpe", "crepe")
    assert {m: REGISTRY[m].threshold for m in PITCH_METHODS} == {
        "harvest": None, "dio": None, "pm": 0.6, "rmvpe": 0.05, "fcpe": 0.05, "crepe": 0.05}
    assert all((REGISTRY[m].sample_rate, REGISTRY[m].hop) == (16000, 160) for m in NEURAL_METHODS)
    assert [REGISTRY[m].default_decoder for m in NEURAL_METHODS] == ["local_average", "local_argmax", "viterbi"]
    with pytest.raises(ValueError, match="unknown pitch method 'yin'; choose one of harvest, dio, pm, rmvpe"):
        pitch_method("yin")
    with pytest.raises(ValueError, match="pm is not a neural pitch method"):
        pitch_method("pm", neural=True)
    with pytest.raises(ValueError, match="FCPE decoder must be one of local_argmax, argmax, got 'viterbi'"):
        SalienceDecoder("fcpe", decoder="viterbi")


def peaked_salience(cents: np.ndarray, table: np.ndarray, width: float = 25.0) -> np.ndarray:
    """[T, 360] Gaussian bumps centred on ``cents`` (0 cents: a silent, unvoiced frame)."""
    bumps = np.exp(-0.5 * ((table[None, :] - cents[:, None]) / width) ** 2)
    return np.where(cents[:, None] > 0, 0.9 * bumps, 0.01).astype(np.float32)


def test_one_decoder_gives_each_methods_own_decoding():
    rng = np.random.default_rng(0)
    cents = np.concatenate([[0.0, 0.0], 1200 * np.log2(rng.uniform(80, 900, 30) / 10), [0.0]])
    rmvpe = peaked_salience(cents, rmvpe_bin_cents())
    fcpe = peaked_salience(cents, fcpe_bin_cents())
    np.testing.assert_array_equal(SalienceDecoder("rmvpe")(rmvpe), decode_rmvpe(rmvpe, 0.05))
    np.testing.assert_array_equal(SalienceDecoder("fcpe")(fcpe), decode_fcpe(fcpe, "local_argmax", 0.05))
    wav = (0.3 * np.sin(2 * np.pi * 220 * np.arange(32 * 160) / 16000)).astype(np.float32)
    np.testing.assert_array_equal(SalienceDecoder("crepe")(rmvpe, wav), decode_crepe(rmvpe, wav, "viterbi", 0.05))
    # batched [B, T, bins] as the graphs emit it, and the decoded pitch is the bump's
    batched = SalienceDecoder("rmvpe", threshold=0.5)(rmvpe[None])
    assert batched.shape == (1, cents.size)
    voiced = cents > 0
    np.testing.assert_array_equal(batched[0] > 0, voiced)
    assert np.abs(1200 * np.log2(batched[0, voiced] / cents_to_hz(cents[voiced]))).max() < 1.0


def test_decoder_from_a_manifest_pitch_section():
    info = SimpleNamespace(method="fcpe", threshold=0.2, decoder="argmax", f0_min=60.0, f0_max=900.0,
                           bins_f0_min=40.0, bins_f0_max=1500.0)
    decoder = SalienceDecoder.from_pitch_info(info)
    assert decoder == SalienceDecoder("fcpe", 0.2, "argmax", (60.0, 900.0), (40.0, 1500.0))
    info.bins_f0_min = None
    assert SalienceDecoder.from_pitch_info(info).bins_range is None
    salience = peaked_salience(np.array([3000.0, 0.0]), fcpe_bin_cents(f0_range=FCPE_F0_RANGE))
    assert SalienceDecoder.from_pitch_info(info)(salience)[1] == 0.0


def test_neural_method_without_graph_or_torch_backend_says_what_to_do(monkeypatch):
    monkeypatch.setattr(extract.metadata, "entry_points", lambda group: [])
    with pytest.raises(extract.PitchExtractionError, match=r"--checkpoint MODEL.onnx.*svc-toolkit\[train\]"):
        extract.load_pitch_estimator(extract.PitchOptions("fcpe"))


def test_torch_backend_is_registered_for_the_runtime():
    torch_side = pytest.importorskip("svc_train.pitch.extract")
    (entry,) = [e for e in extract.metadata.entry_points(group=extract.ESTIMATOR_ENTRY_POINTS) if e.name == "torch"]
    assert entry.load() is torch_side.torch_pitch_estimator


@pytest.mark.parametrize("provider", ["cpu", "openvino"])
def test_an_onnx_pitch_graph_needs_one_batch_by_samples_input(tmp_path, provider):
    """A graph whose audio input is [B, 1, N] is refused at load, on either CPU backend, naming the file."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from svc_runtime.bundle.openvino_session import openvino_available
    from svc_runtime.bundle.sessions import ProviderConfig

    if provider == "openvino" and not openvino_available():
        pytest.skip("openvino is not installed")
    path = tmp_path / "pitch.onnx"
    graph = helper.make_graph(
        [helper.make_node("Identity", ["wav"], ["salience"])], "g",
        [helper.make_tensor_value_info("wav", TensorProto.FLOAT, ["batch", 1, "samples"])],
        [helper.make_tensor_value_info("salience", TensorProto.FLOAT, ["batch", 1, "samples"])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(extract.PitchExtractionError, match=r"pitch\.onnx: expected one audio input .* of rank 3"):
        extract.OnnxPitchEstimator(path, "fcpe", ProviderConfig(provider=provider))
