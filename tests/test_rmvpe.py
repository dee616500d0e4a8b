"""RMVPE parity against the so-vits-svc 4.1 reference (fixture ``rmvpe_small``).

The fixture network has the real RMVPE structure and key names with a reduced
U-Net width (en_out_channels 2) and seeded random weights; see its README.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from pitch_helpers import assert_session_matches_graph, export_salience_graph, read_npz

from svc_runtime.pitch.decode import decode_rmvpe, rmvpe_bin_cents
from svc_runtime.signal.f0 import interpolate_unvoiced, resize_f0
from svc_train.pitch.extract import NeuralPitchExtractor, extract_f0
from svc_train.pitch.mel import RMVPE_MEL, LogMelSpectrogram
from svc_train.pitch.rmvpe import RmvpeFromAudio, load_rmvpe, read_rmvpe_state_dict

FIXTURE = Path(__file__).parent / "fixtures" / "rmvpe_small"
CHECKPOINT = FIXTURE / "rmvpe.pt"


@pytest.fixture(scope="module")
def io() -> dict[str, np.ndarray]:
    return read_npz(FIXTURE / "io.npz")


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return load_rmvpe(CHECKPOINT)


def _salience(module: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return module(torch.from_numpy(x)).numpy()


def test_sizes_are_read_from_the_weights(model) -> None:
    assert model.config.en_out_channels == 2
    assert (model.config.n_mels, model.config.n_classes, model.config.gru_hidden) == (128, 360, 256)
    state = model.state_dict()
    n_floats = sum(v.is_floating_point() for v in state.values())
    assert (len(state), n_floats, sum(v.numel() for v in state.values())) == (801, 673, 2_602_405)  # README


def test_plain_state_dict_loads_like_the_wrapped_one(model, io, tmp_path) -> None:
    plain = tmp_path / "rmvpe_rvc_layout.pt"
    torch.save(read_rmvpe_state_dict(CHECKPOINT), plain)
    other = load_rmvpe(plain)
    np.testing.assert_array_equal(_salience(other, io["mel"]), _salience(model, io["mel"]))


def test_mel_front_end_matches_reference(io) -> None:
    mel = _salience(LogMelSpectrogram(RMVPE_MEL), io["audio"][None])
    assert mel.shape == io["mel"].shape == (1, 128, io["audio"].size // 160 + 1)
    # Reference vs float64 mel differs by up to 1.6e-4 (README: 1.34e-4); ours by 1.9e-4.
    assert np.abs(mel - io["mel"]).max() < 5e-4


def test_salience_matches_reference(model, io) -> None:
    from_mel = _salience(model, io["mel"])
    assert from_mel.shape == io["hidden"].shape
    assert np.abs(from_mel - io["hidden"]).max() < 1e-5  # measured 1.1e-6
    from_audio = _salience(RmvpeFromAudio(model), io["audio"][None])
    assert np.abs(from_audio - io["hidden"]).max() < 1e-4  # measured 1.3e-6 (mel error propagated)


@pytest.mark.parametrize(("threshold", "key"), [(0.05, "f0"), (0.03, "f0_thred003")])
def test_decoded_f0_matches_reference(io, threshold: float, key: str) -> None:
    f0 = decode_rmvpe(io["hidden"][0], threshold)
    expected = io[key]
    np.testing.assert_array_equal(f0 > 0, expected > 0)
    voiced = expected > 0
    assert np.abs(f0[voiced] / expected[voiced] - 1).max() < 1e-5  # measured 8.9e-7


def test_extract_f0_end_to_end_and_post_processing(io) -> None:
    times, f0 = extract_f0("rmvpe", io["audio"], checkpoint=CHECKPOINT)
    np.testing.assert_allclose(times, np.arange(231) * 0.01)
    expected = io["f0"]
    np.testing.assert_array_equal(f0 > 0, expected > 0)
    assert np.abs(f0[expected > 0] / expected[expected > 0] - 1).max() < 1e-5
    # so-vits-svc's compute_f0_uv: nearest resize to len // hop frames, then fill unvoiced.
    resized = resize_f0(f0, io["audio"].size // int(io["post_hop_length"]), mode="nearest")
    filled, uv = interpolate_unvoiced(resized)
    np.testing.assert_array_equal(uv, io["uv_post"])
    assert np.abs(filled / io["f0_post"] - 1).max() < 1e-5


def test_threshold_override_changes_voicing(io) -> None:
    extractor = NeuralPitchExtractor("rmvpe", CHECKPOINT, threshold=0.03)
    _, f0 = extractor(io["audio"])
    assert (f0 > 0).sum() == (io["f0_thred003"] > 0).sum() == 218


def test_edge_bins_use_a_truncated_window() -> None:
    salience = np.zeros((2, 360), dtype=np.float32)
    salience[0, [0, 1, 5]] = [0.9, 0.3, 0.8]  # bin 5 lies outside argmax 0's window
    salience[1, [359, 355]] = [0.6, 0.2]
    cents = rmvpe_bin_cents()
    expected0 = (0.9 * cents[0] + 0.3 * cents[1]) / 1.2
    expected1 = (0.6 * cents[359] + 0.2 * cents[355]) / 0.8
    f0 = decode_rmvpe(salience, threshold=0.05)
    np.testing.assert_allclose(f0, 10 * 2 ** (np.array([expected0, expected1]) / 1200), rtol=1e-6)
    assert decode_rmvpe(salience, threshold=0.9)[0] == 0  # strictly greater than the threshold


def test_missing_checkpoint_names_the_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="rmvpe.pt"):
        extract_f0("rmvpe", np.zeros(16000, dtype=np.float32))
    with pytest.raises(FileNotFoundError, match="--checkpoint"):
        load_rmvpe(tmp_path / "rmvpe.pt")


def test_wrong_checkpoint_is_a_clear_error(tmp_path) -> None:
    bogus = tmp_path / "bogus.pt"
    torch.save({"model": {"enc.weight": torch.zeros(3)}}, bogus)
    with pytest.raises(ValueError, match="not a loadable RMVPE checkpoint"):
        load_rmvpe(bogus)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"model": argparse.Namespace(a=1)}, unsafe)  # not plain data: refused, never executed
    with pytest.raises(ValueError, match="cannot read it as an RMVPE checkpoint"):
        load_rmvpe(unsafe)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(CHECKPOINT.read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated.pt: cannot read"):
        load_rmvpe(truncated)


def test_bad_audio_is_rejected() -> None:
    extractor = NeuralPitchExtractor("rmvpe", CHECKPOINT)
    with pytest.raises(ValueError, match="too short"):
        extractor(np.zeros(400, dtype=np.float32))
    with pytest.raises(ValueError, match="mono"):
        extractor(np.zeros((2, 16000), dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        extractor(np.full(16000, np.nan, dtype=np.float32))


def test_exports_to_onnx_with_dynamic_length(model, tmp_path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    graph = RmvpeFromAudio(model).eval()
    path = tmp_path / "rmvpe.onnx"
    rng = np.random.default_rng(0)
    example = torch.from_numpy(rng.standard_normal((1, 8000)).astype(np.float32) * 0.1)
    export_salience_graph(graph, example, path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert_session_matches_graph(session, graph, ((1, 1000), (1, 12345), (1, 20000), (2, 4321)), rng)
