"""Export the sovits41_small fixture generator (+ f0 predictor, RMVPE pitch, fp16 copies) once,
then run the bundle with `svc_runtime.Bundle` (numpy + ONNX Runtime) against the reference arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from svc_runtime import Bundle
from svc_runtime.bundle import BundleIntegrityError, ProviderConfig, ProviderUnavailableError
from svc_runtime.bundle.manifest import Manifest

torch = pytest.importorskip("torch")

FIXTURE = Path(__file__).parent / "fixtures" / "sovits41_small"
RMVPE = Path(__file__).parent / "fixtures" / "rmvpe_small"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from svc_export.exporter import ExportRequest, export_bundle

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("bundles") / "small"
    parity: dict[str, list] = {}
    request = ExportRequest(
        checkpoint=FIXTURE / "G_1.pth", config=FIXTURE / "config.json", output=out, fp16=True,
        pitch="rmvpe", pitch_checkpoint=RMVPE / "rmvpe.pt", simplify=False,
    )
    manifest = export_bundle(request, on_parity=lambda title, results: parity.__setitem__(title, results))
    return out, manifest, parity


@pytest.fixture(scope="module")
def bundle(exported) -> Bundle:
    return Bundle.load(exported[0])


@pytest.fixture(scope="module")
def io():
    return dict(np.load(FIXTURE / "io.npz"))


def zero_noise(frames: int, batch: int = 1) -> dict[str, np.ndarray]:
    return {
        "prior": np.zeros((batch, 32, frames), np.float32),
        "rand_ini": np.zeros((batch, 9), np.float32),
        "sine": np.zeros((batch, frames * 512, 9), np.float32),
    }


def test_every_graph_matches_torch_at_three_lengths(exported):
    _, manifest, parity = exported
    assert set(manifest.graphs) == {"generator", "generator_fp16", "f0_predictor", "pitch", "pitch_fp16",
                                    "synthesis", "synthesis_fp16"}  # no speech encoder: no converter graphs
    for name in ("generator", "f0_predictor", "pitch", "synthesis"):
        records = manifest.graphs[name].parity
        assert len({r.length for r in records}) == 3, name
        assert all(r.reference == "torch" and r.max_abs_error <= r.tolerance for r in records), records
    assert max(r.max_abs_error for r in manifest.graphs["generator"].parity) < 1e-4
    assert max(r.max_abs_error for r in manifest.graphs["pitch"].parity) < 1e-5
    # the callback saw the same numbers that the manifest records
    assert [r.max_abs_error for r in parity["generator (fp32) vs PyTorch"]] == [
        r.max_abs_error for r in manifest.graphs["generator"].parity
    ]


def test_graphs_are_opset_17_without_float64(exported):
    """What TensorRT needs and can be checked without it: one opset, no double-precision tensor."""
    import onnx

    from svc_export.onnx_export import float64_tensors

    path, manifest, _ = exported
    for entry in manifest.graphs.values():
        model = onnx.load(str(path / entry.file))
        assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
        assert float64_tensors(model) == [], entry.file


def test_fp16_graphs_stay_close_to_fp32(exported):
    _, manifest, _ = exported
    for name, bound in (("generator_fp16", 1e-2), ("pitch_fp16", 5e-3)):
        records = manifest.graphs[name].parity
        assert manifest.graphs[name].precision == "fp16"
        assert len(records) == 3 and all(r.reference.endswith("fp32 graph") for r in records)
        assert 0 < max(r.max_abs_error for r in records) < bound, records


def test_generate_with_zero_noise_matches_reference_audio(bundle, io):
    frames = io["c"].shape[2]
    audio = bundle.generate(io["c"], io["f0"], io["uv"], io["sid"], noise_scale=0.0, noise=zero_noise(frames))
    assert audio.shape == io["audio"].shape == (1, 1, frames * 512)
    assert np.abs(audio - io["audio"]).max() < 1e-3


def test_generate_with_given_noise_matches_reference_noisy_audio(bundle, io):
    noisy = np.load(FIXTURE / "io_noise.npz")
    noise = {"prior": noisy["noise_prior"], "rand_ini": noisy["noise_rand_ini"], "sine": noisy["noise_sine"]}
    audio = bundle.generate(io["c"], io["f0"], io["uv"], "bob", noise_scale=float(noisy["noice_scale"]), noise=noise)
    assert np.abs(audio - noisy["audio_noisy"]).max() < 1e-3


def test_predicted_f0_and_its_audio_match_reference(bundle, io):
    frames = io["c"].shape[2]
    weights = bundle.one_hot_speakers(io["sid"], 1, frames)
    f0_pred = bundle.predict_f0(io["c"], io["f0"], io["uv"], weights)
    assert np.abs(f0_pred - io["f0_pred"]).max() < 1e-2  # Hz; values reach ~250 Hz
    audio = bundle.generate(io["c"], f0_pred, io["uv"], io["sid"], noise_scale=0.0, noise=zero_noise(frames))
    assert np.abs(audio - io["audio_pred"]).max() < 1e-3


def test_default_noise_is_seeded_and_reproducible(bundle, io):
    c, f0, uv = io["c"][:, :, :20], io["f0"][:, :20], io["uv"][:, :20]
    first = bundle.generate(c, f0, uv, 0, seed=7)
    again = bundle.generate(c, f0, uv, 0, seed=7)
    other = bundle.generate(c, f0, uv, 0, seed=8)
    assert np.array_equal(first, again)
    assert np.abs(first - other).max() > 1e-3


def test_speaker_mix_matches_torch_weighted_embedding(bundle, io):
    """Constant mix weights through the graph equal the torch model's own mix (weights [B, S])."""
    from svc_train.checkpoint import load_generator

    model = load_generator(FIXTURE / "G_1.pth", FIXTURE / "config.json")
    frames = 40
    c, f0, uv = io["c"][:, :, :frames], io["f0"][:, :frames], io["uv"][:, :frames]
    mix = np.array([[0.3, 0.7]], np.float32)
    weights = np.repeat(mix[:, None, :], frames, axis=1)
    audio = bundle.generate_mix(c, f0, uv, weights, noise_scale=0.0, noise=zero_noise(frames))
    with torch.no_grad():
        expected, _ = model.infer(torch.from_numpy(c), torch.from_numpy(f0), torch.from_numpy(uv),
                                  torch.from_numpy(mix), noise_scale=0.0, deterministic=True)
    assert np.abs(audio - expected.numpy()).max() < 1e-3
    one_hot = bundle.generate_mix(c, f0, uv, bundle.one_hot_speakers(1, 1, frames), noise_scale=0.0,
                                  noise=zero_noise(frames))
    by_id = bundle.generate(c, f0, uv, 1, noise_scale=0.0, noise=zero_noise(frames))
    assert np.array_equal(one_hot, by_id)
    assert np.abs(one_hot - audio).max() > 1e-3  # the mix really changes the voice


def test_time_varying_mix_follows_each_speaker_away_from_the_switch(bundle, io):
    frames = 60
    c, f0, uv = io["c"][:, :, :frames], io["f0"][:, :frames], io["uv"][:, :frames]
    weights = np.zeros((1, frames, 2), np.float32)
    weights[:, :30, 0] = 1.0
    weights[:, 30:, 1] = 1.0
    mixed = bundle.generate_mix(c, f0, uv, weights, noise_scale=0.0, noise=zero_noise(frames))
    alice = bundle.generate(c, f0, uv, "alice", noise_scale=0.0, noise=zero_noise(frames))
    bob = bundle.generate(c, f0, uv, "bob", noise_scale=0.0, noise=zero_noise(frames))
    assert not np.allclose(alice, bob, atol=1e-3)
    # frames 30.. take bob's conditioning, 0..29 alice's: the audio follows each, except near the switch
    # (the decoder's receptive field mixes a few frames around it)
    assert np.abs(mixed[..., : 20 * 512] - alice[..., : 20 * 512]).max() < 0.25 * np.abs(bob - alice).max()
    assert np.abs(mixed[..., 40 * 512:] - bob[..., 40 * 512:]).max() < 0.25 * np.abs(bob - alice).max()


def test_carried_phase_continues_the_source(bundle, io):
    """Phases for two chunks, the second starting from the first's end phase, equal one pass."""
    f0 = io["f0"]
    rand_ini = np.random.default_rng(0).random((1, 9)).astype(np.float32)
    whole, _ = bundle.source_phases(f0, rand_ini=rand_ini)
    first, end = bundle.source_phases(f0[:, :70], rand_ini=rand_ini)
    second, _ = bundle.source_phases(f0[:, 70:], initial_phase=end)
    assert np.abs(np.concatenate([first, second], axis=1) - whole).max() < 1e-6
    audio, end_phase = bundle.generate_chunk(io["c"][:, :, 70:], f0[:, 70:], io["uv"][:, 70:],
                                             bundle.one_hot_speakers(1, 1, f0.shape[1] - 70),
                                             noise=zero_noise(f0.shape[1] - 70), initial_phase=end)
    assert audio.shape == (1, 1, (f0.shape[1] - 70) * 512) and end_phase.shape == (1, 9)


def test_batch_of_two_equals_two_single_runs(bundle, io):
    frames = 30
    c = np.concatenate([io["c"][:, :, :frames], io["c"][:, :, 50:50 + frames]])
    f0 = np.concatenate([io["f0"][:, :frames], io["f0"][:, 50:50 + frames]])
    uv = (f0 > 0).astype(np.float32)
    both = bundle.generate(c, f0, uv, [0, 1], noise_scale=0.0, noise=zero_noise(frames, 2))
    for b, sid in enumerate((0, 1)):
        single = bundle.generate(c[b:b + 1], f0[b:b + 1], uv[b:b + 1], sid, noise_scale=0.0, noise=zero_noise(frames))
        assert np.abs(both[b:b + 1] - single).max() < 1e-5


def test_pitch_graph_reproduces_rmvpe_salience(bundle):
    ref = np.load(RMVPE / "io.npz")
    salience = bundle.pitch_salience(ref["audio"])
    assert salience.shape == ref["hidden"].shape == (1, 231, 360)
    assert np.abs(salience - ref["hidden"]).max() < 1e-4
    assert bundle.manifest.pitch.method == "rmvpe" and bundle.manifest.pitch.threshold == pytest.approx(0.05)


def test_fp16_bundle_runs_on_cpu_close_to_reference(exported, io):
    half = Bundle.load(exported[0], precision="fp16")
    assert half.graph_entry("generator").precision == "fp16"
    frames = io["c"].shape[2]
    audio = half.generate(io["c"], io["f0"], io["uv"], io["sid"], noise_scale=0.0, noise=zero_noise(frames))
    assert np.abs(audio - io["audio"]).max() < 1e-2


def test_manifest_describes_the_model(exported):
    path, manifest, _ = exported
    assert Manifest.read(path) == manifest
    model = manifest.model
    assert (model.sampling_rate, model.hop_length, model.ssl_dim, model.n_speakers) == (44100, 512, 768, 2)
    assert model.speakers == {"alice": 0, "bob": 1} and model.nsf_source_sampling_rate == 44100
    generator = manifest.graphs["generator"]
    assert generator.input("c").shape == ("batch", 768, "frames")
    assert generator.input("sine_noise").shape == ("batch", "samples", 9)
    assert generator.outputs[0].shape == ("batch", 1, "samples")
    assert manifest.speech_encoder.name == "vec768l12" and manifest.speech_encoder.graph is None
    assert sorted(p.name for p in path.iterdir()) == sorted(
        ["manifest.json"] + [g.file for g in manifest.graphs.values()]
    )


def test_svc_run_info_prints_the_manifest_summary(exported, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from svc_runtime.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["info", str(exported[0])], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    for text in ("44100 Hz / 512", "alice=0, bob=1", "generator.fp16.onnx", "[batch, 768, frames]", "rmvpe",
                 "files match their sha256"):
        assert text in result.output
    copy = tmp_path / "copy"
    shutil.copytree(exported[0], copy)
    (copy / "generator.onnx").write_bytes(b"broken")
    result = runner.invoke(app, ["info", str(copy)], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "generator.onnx" in result.output and "corrupted" in result.output


def test_corrupted_graph_is_caught_by_sha256(exported, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(exported[0], copy)
    graph = copy / "f0_predictor.onnx"
    original = graph.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError, match="f0_predictor.onnx.*corrupted"):
        Bundle.load(copy)
    graph.write_bytes(original)
    Bundle.load(copy)
    (copy / "pitch.onnx").unlink()
    with pytest.raises(BundleIntegrityError, match="pitch.onnx.*missing"):
        Bundle.load(copy, verify=True)


def test_bad_generator_inputs_are_clear_errors(bundle, io):
    frames = io["c"].shape[2]
    with pytest.raises(ValueError, match=r"c must be \[B, 768, T\]"):
        bundle.generate(io["c"][:, :100], io["f0"], io["uv"], 0)
    with pytest.raises(ValueError, match="f0 must be"):
        bundle.generate(io["c"], io["f0"][:, :10], io["uv"], 0)
    with pytest.raises(ValueError, match="unknown speaker 'carol'"):
        bundle.generate(io["c"], io["f0"], io["uv"], "carol")
    with pytest.raises(ValueError, match="out of range"):
        bundle.generate(io["c"], io["f0"], io["uv"], 5)
    with pytest.raises(ValueError, match="lacks"):
        bundle.generate(io["c"], io["f0"], io["uv"], 0, noise={"prior": np.zeros((1, 32, frames))})
    with pytest.raises(ValueError, match="sine_noise must have shape"):
        bad = zero_noise(frames)
        bad["sine"] = bad["sine"][:, :100]
        bundle.generate(io["c"], io["f0"], io["uv"], 0, noise=bad)
    with pytest.raises(ValueError, match="no speech_encoder graph"):
        bundle.encode_units(np.zeros(16000, np.float32))


def test_load_only_some_roles(exported):
    generator_only = Bundle.load(exported[0], roles=("generator",), verify=False)
    assert list(generator_only.sessions) == ["generator"]  # the others open on first use
    assert generator_only.has_graph("pitch") and "pitch" not in generator_only.sessions
    generator_only.pitch_salience(np.zeros(1600, np.float32))
    assert list(generator_only.sessions) == ["generator", "pitch"]
    with pytest.raises(ValueError, match="roles \\['vocoder'\\] are not runnable here"):
        Bundle.load(exported[0], roles=("vocoder",))


def test_unavailable_provider_is_a_clear_error(exported):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(ProviderUnavailableError, match="'cuda'.*not available.*onnxruntime-gpu"):
        Bundle.load(exported[0], provider="cuda")
    with pytest.raises(ValueError, match="provider must be one of"):
        ProviderConfig(provider="metal")


def _has_cuda() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.gpu
@pytest.mark.skipif(not _has_cuda(), reason="needs onnxruntime-gpu with a CUDA device")
def test_cuda_io_binding_matches_cpu(exported, io):
    frames = io["c"].shape[2]
    cpu = Bundle.load(exported[0], precision="fp32")
    gpu = Bundle.load(exported[0], provider="cuda", precision="fp32")
    args = (io["c"], io["f0"], io["uv"], io["sid"])
    expected = cpu.generate(*args, noise_scale=0.0, noise=zero_noise(frames))
    for _ in range(2):  # the second call reuses the bound device buffers
        got = gpu.generate(*args, noise_scale=0.0, noise=zero_noise(frames))
        assert np.abs(got - expected).max() < 1e-3
