"""`svc-run pitch` end to end on synthesised audio: CSV layout, accuracy, grids, errors, exit codes."""

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile
from test_pitch_classic import cents_error, glide_tone
from typer.testing import CliRunner

from svc_runtime.audio.resample import resampled_length
from svc_runtime.bundle.openvino_session import openvino_available
from svc_runtime.cli.app import app

runner = CliRunner()


@pytest.fixture
def one_torch_thread():
    """The torch side on one thread: on a busy 2-core machine two spinning threads run 10-100x slower."""
    torch = pytest.importorskip("torch", reason="this path runs on the PyTorch side (svc-toolkit[train])")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(before)


def read_f0_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["time_s", "f0_hz"]
    data = np.array(rows[1:], dtype=np.float64)
    return data[:, 0], data[:, 1]


def run_pitch(*args: str):
    return runner.invoke(app, ["pitch", *map(str, args)])


@pytest.fixture(scope="module")
def tone_wav(tmp_path_factory):
    """1 s harmonic glide 150 -> 300 Hz then 0.3 s silence, 22.05 kHz 16-bit WAV."""
    audio, f0_at = glide_tone(22050)
    path = tmp_path_factory.mktemp("audio") / "glide.wav"
    soundfile.write(path, audio, 22050, subtype="PCM_16")
    return path, audio.size, f0_at


@pytest.mark.parametrize("method", ["harvest", "dio", "pm"])
def test_default_grid_csv_is_accurate(tone_wav, tmp_path, method):
    wav, n_samples, f0_at = tone_wav
    out = tmp_path / "f0.csv"
    result = run_pitch(wav, "--method", method, "-o", out)
    assert result.exit_code == 0, result.output
    times, f0 = read_f0_csv(out)
    n = resampled_length(n_samples, 22050, 16000) // 160 + 1
    assert times.size == n
    np.testing.assert_allclose(times, np.arange(n) * 0.01, atol=5e-7)
    truth = f0_at(times)
    assert np.median(cents_error(f0, truth)) < 3.0
    assert np.mean(f0[truth > 0] > 0) > 0.95  # voicing recall
    assert np.mean(f0[times > 1.05] > 0) < 0.05  # silence stays 0 (raw, not interpolated)


def test_requested_grid(tone_wav, tmp_path):
    wav, n_samples, f0_at = tone_wav
    out = tmp_path / "grid.csv"
    result = run_pitch(wav, "--method", "harvest", "--sr", 44100, "--hop", 512, "-o", out)
    assert result.exit_code == 0, result.output
    times, f0 = read_f0_csv(out)
    n = resampled_length(n_samples, 22050, 44100) // 512
    assert times.size == n
    np.testing.assert_allclose(times, np.arange(n) * 512 / 44100, atol=5e-7)
    assert np.median(cents_error(f0, f0_at(times))) < 3.0


def test_stereo_input_is_mixed_to_mono(tmp_path):
    audio, f0_at = glide_tone(16000)
    wav = tmp_path / "stereo.flac"
    soundfile.write(wav, np.stack([audio, 0.5 * audio], axis=1), 16000)
    out = tmp_path / "stereo.csv"
    result = run_pitch(wav, "--method", "dio", "-o", out)
    assert result.exit_code == 0, result.output
    times, f0 = read_f0_csv(out)
    assert np.median(cents_error(f0, f0_at(times))) < 5.0


def test_bad_audio_fails_with_the_file_named(tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio")
    out = tmp_path / "never.csv"
    result = run_pitch(bad, "--method", "harvest", "-o", out)
    assert result.exit_code == 1
    assert "notes.wav" in result.output and "not a readable audio file" in result.output
    assert not out.exists()
    result = run_pitch(tmp_path / "missing.wav", "--method", "harvest", "-o", out)
    assert result.exit_code == 1 and "does not exist" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "yin"], "unknown pitch method"),
        (["--method", "crepe", "--checkpoint", "nowhere/crepe.onnx"], "not found"),
        (["--method", "harvest", "--sr", "44100"], "--sr and --hop together"),
        (["--method", "harvest", "--threshold", "0.3"], "no voicing threshold"),
        (["--method", "rmvpe", "--checkpoint", "nowhere/rmvpe.onnx"], "not found"),
        (["--method", "harvest", "--provider", "openvino"], "runs an ONNX pitch graph"),
        (["--method", "harvest", "--provider", "cuda"], "runs on cpu or openvino"),
    ],
)
def test_bad_options_exit_2(tone_wav, tmp_path, args, message):
    result = run_pitch(tone_wav[0], *args, "-o", tmp_path / "x.csv")
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")  # torch.onnx export chatter
def test_rmvpe_onnx_graph_matches_the_torch_side_on_both_cpu_backends(tmp_path, fixtures_dir, one_torch_thread):
    torch = one_torch_thread
    from svc_train.pitch.rmvpe import RmvpeFromAudio, load_rmvpe

    checkpoint = fixtures_dir / "rmvpe_small" / "rmvpe.pt"  # random weights: parity, not accuracy
    graph = RmvpeFromAudio(load_rmvpe(checkpoint)).eval()
    onnx_path = tmp_path / "rmvpe.onnx"
    torch.onnx.export(
        graph, (torch.zeros(1, 8000),), str(onnx_path), dynamo=False, opset_version=17,
        input_names=["audio"], output_names=["salience"],
        dynamic_axes={"audio": {0: "batch", 1: "samples"}, "salience": {0: "batch", 1: "frames"}},
    )
    audio, _ = glide_tone(16000, seconds=0.4, silence_s=0.1)  # short: the torch side is the slow part
    wav = tmp_path / "short.wav"
    soundfile.write(wav, audio, 16000, subtype="FLOAT")
    outputs = {}
    runs = [("onnx", onnx_path, ()), ("torch", checkpoint, ())]
    if openvino_available():  # the same graph on OpenVINO's CPU plugin (--provider openvino)
        runs.append(("openvino", onnx_path, ("--provider", "openvino")))
    for name, ckpt, extra in runs:
        out = tmp_path / f"{name}.csv"
        result = run_pitch(wav, "--method", "rmvpe", "--checkpoint", ckpt, "--threshold", 0.03, "-o", out, *extra)
        assert result.exit_code == 0, result.output
        outputs[name] = read_f0_csv(out)
    (t_onnx, f_onnx), (t_torch, f_torch) = outputs["onnx"], outputs["torch"]
    np.testing.assert_array_equal(t_onnx, t_torch)
    np.testing.assert_array_equal(f_onnx > 0, f_torch > 0)
    assert (f_onnx > 0).any()
    np.testing.assert_allclose(f_onnx, f_torch, rtol=1e-4)
    if "openvino" in outputs:
        t_ov, f_ov = outputs["openvino"]
        np.testing.assert_array_equal(t_ov, t_onnx)
        np.testing.assert_array_equal(f_ov > 0, f_onnx > 0)
        np.testing.assert_allclose(f_ov, f_onnx, rtol=1e-4)


def test_fcpe_real_weights_through_the_torch_side(tone_wav, tmp_path, one_torch_thread):
    wav, _, f0_at = tone_wav
    out = tmp_path / "fcpe.csv"
    result = run_pitch(wav, "--method", "fcpe", "--sr", 44100, "--hop", 512, "-o", out)
    assert result.exit_code == 0, result.output
    times, f0 = read_f0_csv(out)
    truth = f0_at(times)
    assert np.median(cents_error(f0, truth)) < 10.0
    assert np.mean(f0[truth > 0] > 0) > 0.95
