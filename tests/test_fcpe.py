"""FCPE parity with torchfcpe 0.0.4's bundled model on its real weights (fixture ``fcpe_real``).

The weights come from the torchfcpe wheel (``pip install --no-deps torchfcpe==0.0.4``);
a missing wheel fails these tests instead of skipping them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pitch_helpers import (
    assert_session_matches_graph,
    cents_between,
    export_salience_graph,
    hide_installed_wheels,
    read_npz,
)

from svc_runtime.pitch.decode import decode_fcpe, fcpe_bin_cents
from svc_train.pitch.extract import NeuralPitchExtractor, extract_f0
from svc_train.pitch.fcpe import (
    BUNDLED_SHA256,
    FcpeFromAudio,
    bundled_fcpe_checkpoint,
    load_fcpe,
)

FIXTURE = Path(__file__).parent / "fixtures" / "fcpe_real"
CASES = [  # (fixture key, decoder, threshold)
    ("f0_local_argmax_thr0.006", "local_argmax", 0.006),
    ("f0_local_argmax_thr0.05", "local_argmax", 0.05),
    ("f0_argmax_thr0.006", "argmax", 0.006),
]


@pytest.fixture(scope="module")
def weights() -> Path:
    try:
        return bundled_fcpe_checkpoint(verify=True)
    except FileNotFoundError as error:
        pytest.fail(f"torchfcpe's weights are needed: {error} (`pip install --no-deps torchfcpe==0.0.4`)")


@pytest.fixture(scope="module")
def io() -> dict[str, np.ndarray]:
    return read_npz(FIXTURE / "io.npz")


@pytest.fixture(scope="module")
def extractor(weights: Path) -> NeuralPitchExtractor:
    torch.set_num_threads(1)
    return NeuralPitchExtractor("fcpe", weights)


@pytest.fixture(scope="module")
def salience(extractor: NeuralPitchExtractor, io) -> np.ndarray:
    return extractor.salience(io["wav"])


def test_weights_are_the_published_file(weights: Path) -> None:
    reference = json.loads((FIXTURE / "weights.json").read_text())
    assert weights.as_posix().endswith(reference["file"])
    assert BUNDLED_SHA256 == reference["sha256"]


def test_config_comes_from_the_checkpoint(extractor: NeuralPitchExtractor) -> None:
    reference = json.loads((FIXTURE / "weights.json").read_text())["config"]
    config = extractor.network.network.config
    assert (config.hidden_dims, config.n_layers, config.out_dims) == (512, 6, 360)
    assert (config.f0_min, config.f0_max) == (reference["model"]["f0_min"], reference["model"]["f0_max"])
    mel = reference["mel"]
    assert (config.n_mels, config.n_fft, config.hop_length, config.mel_fmin, config.mel_fmax) == (
        mel["num_mels"], mel["n_fft"], mel["hop_size"], mel["fmin"], mel["fmax"]
    )


def test_mel_front_end_matches_torchfcpe(extractor: NeuralPitchExtractor, io) -> None:
    with torch.inference_mode():
        mel = extractor.network.mel(torch.from_numpy(io["wav"])[None])[0].T.numpy()
    assert mel.shape == io["mel"].shape == (io["wav"].size // 160 + 1, 128)
    assert np.abs(mel - io["mel"]).max() < 5e-4  # measured 1.4e-4 (low-energy bins)


@pytest.mark.parametrize(("key", "decoder", "threshold"), CASES)
def test_f0_matches_torchfcpe(salience: np.ndarray, io, key: str, decoder: str, threshold: float) -> None:
    f0 = decode_fcpe(salience, decoder, threshold)
    expected = io[key]
    assert f0.shape == expected.shape
    mismatched = np.flatnonzero((f0 > 0) != (expected > 0))
    assert mismatched.size <= 1  # measured 0
    for i in mismatched:  # only allowed where voicing changes in the reference
        assert (expected[max(i - 1, 0)] > 0) != (expected[min(i + 1, expected.size - 1)] > 0)
    both = (f0 > 0) & (expected > 0)
    assert both.sum() >= 270
    assert cents_between(f0[both], expected[both]).max() < 1.0  # measured 0.0017 cents


def test_f0_from_the_fixture_mel_also_matches(extractor: NeuralPitchExtractor, io) -> None:
    with torch.inference_mode():
        salience = extractor.network.network(torch.from_numpy(io["mel"])[None])[0].numpy()
    f0 = decode_fcpe(salience, "local_argmax", 0.006)
    expected = io["f0_local_argmax_thr0.006"]
    np.testing.assert_array_equal(f0 > 0, expected > 0)
    assert cents_between(f0[f0 > 0], expected[f0 > 0]).max() < 1.0


def test_extract_f0_defaults_track_the_true_pitch(io) -> None:
    times, f0 = extract_f0("fcpe", io["wav"])  # bundled weights, local_argmax, threshold 0.05
    assert f0.shape == times.shape == (301,)
    np.testing.assert_allclose(times[:3], [0.0, 0.01, 0.02])
    expected = io["f0_local_argmax_thr0.05"]
    np.testing.assert_array_equal(f0 > 0, expected > 0)
    truth = io["f0_true_per_sample"][np.minimum(np.arange(f0.size) * 160, io["wav"].size - 1)]
    both = (f0 > 0) & (truth > 0)
    errors = cents_between(f0[both], truth[both])
    assert np.median(errors) < 5.0 and np.percentile(errors, 95) < 20.0  # measured 0.8 / 3.0 cents


def test_local_argmax_clamps_and_argmax_averages_all_bins() -> None:
    cents = fcpe_bin_cents()
    salience = np.zeros((2, 360), dtype=np.float32)
    salience[0, [0, 2, 100]] = [0.9, 0.3, 0.1]  # bin 100 is outside the local window
    salience[1, [200, 201]] = [0.5, 0.5]
    # local: indices argmax-4..argmax+4 clamped into range, so bin 0 counts five times
    local_c = (5 * 0.9 * cents[0] + 0.3 * cents[2]) / (5 * 0.9 + 0.3)
    global_c = (0.9 * cents[0] + 0.3 * cents[2] + 0.1 * cents[100]) / 1.3
    middle = (cents[200] + cents[201]) / 2
    raw = dict(post_range=None, threshold=0.05)
    np.testing.assert_allclose(decode_fcpe(salience, "local_argmax", **raw),
                               10 * 2 ** (np.array([local_c, middle]) / 1200), rtol=1e-6)
    np.testing.assert_allclose(decode_fcpe(salience, "argmax", **raw),
                               10 * 2 ** (np.array([global_c, middle]) / 1200), rtol=1e-6)
    assert decode_fcpe(salience, threshold=0.5, post_range=None)[1] == 0  # strictly greater


def test_post_range_drops_low_and_clamps_high_f0() -> None:
    cents = fcpe_bin_cents()
    salience = np.zeros((3, 360), dtype=np.float32)
    for frame, hz in enumerate((40.0, 440.0, 1500.0)):
        salience[frame, np.argmin(np.abs(cents - 1200 * np.log2(hz / 10)))] = 0.9
    f0 = decode_fcpe(salience)
    assert f0[0] == 0 and 400 < f0[1] < 480 and f0[2] == 1100


def test_missing_wheel_names_the_install_command(monkeypatch) -> None:
    hide_installed_wheels(monkeypatch)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps torchfcpe==0\.0\.4"):
        bundled_fcpe_checkpoint()
    with pytest.raises(FileNotFoundError, match="fcpe_c_v001.pt"):
        extract_f0("fcpe", np.zeros(16000, dtype=np.float32))


def test_unsupported_or_missing_checkpoints_are_clear_errors(tmp_path, weights: Path) -> None:
    with pytest.raises(FileNotFoundError, match="torchfcpe"):
        load_fcpe(tmp_path / "fcpe.pt")
    payload = torch.load(weights, map_location="cpu", weights_only=True)
    payload["config_dict"]["model"]["conv_only"] = False
    attention = tmp_path / "fcpe_attention.pt"
    torch.save(payload, attention)
    with pytest.raises(ValueError, match="conv_only"):
        load_fcpe(attention)
    plain = tmp_path / "fcpe_plain.pt"
    torch.save(payload["model"], plain)
    with pytest.raises(ValueError, match="config_dict"):
        load_fcpe(plain)


def test_exports_to_onnx_with_dynamic_length(extractor: NeuralPitchExtractor, tmp_path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    graph: FcpeFromAudio = extractor.network
    path = tmp_path / "fcpe.onnx"
    rng = np.random.default_rng(0)
    example = torch.from_numpy((rng.standard_normal((1, 8000)) * 0.1).astype(np.float32))
    export_salience_graph(graph, example, path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert_session_matches_graph(session, graph, ((1, 1000), (1, 12345), (2, 20000)), rng)
