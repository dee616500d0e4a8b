"""`svc-export` end to end: a generator with volume embedding and a tiny ContentVec encoder,
FCPE pitch, index and cluster files; and every bad input failing before any work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from svc_runtime import Bundle

torch = pytest.importorskip("torch")

FIXTURES = Path(__file__).parent / "fixtures"
SMALL = FIXTURES / "sovits41_small"
CONTENTVEC = FIXTURES / "contentvec_small"


def run_cli(*args: str | Path):
    from svc_export.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200", "NO_COLOR": "1"})


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> tuple[Path, Path]:
    """A random generator whose units fit contentvec_small (ssl_dim 64), embedding volume."""
    from svc_train.checkpoint import build_generator, save_checkpoint
    from svc_train.config import SvcConfig

    folder = tmp_path_factory.mktemp("tiny")
    config = SvcConfig.load(SMALL / "config.json").replace_model(
        ssl_dim=64, vol_embedding=True, use_automatic_f0_prediction=False, n_speakers=3
    )
    raw = config.to_dict()
    raw["spk"] = {"a": 0, "b": 1, "c": 2}
    (folder / "config.json").write_text(json.dumps(raw))
    torch.manual_seed(0)
    model = build_generator(folder / "config.json")
    save_checkpoint(folder / "G_0.pth", model, iteration=0, learning_rate=1e-4)
    return folder / "G_0.pth", folder / "config.json"


def write_sovits_retrieval_files(folder: Path, dim: int) -> tuple[Path | None, Path]:
    """so-vits-svc's feature_and_index.pkl (needs faiss; None without it) and kmeans_10000.pt for speakers a, b."""
    rng = np.random.default_rng(0)
    kmeans = {name: {"n_features_in_": dim, "_n_threads": 1, "cluster_centers_": rng.standard_normal((5, dim))
                     .astype(np.float32)} for name in ("a", "b")}
    torch.save(kmeans, folder / "kmeans_10000.pt")
    try:
        import faiss
    except ImportError:
        return None, folder / "kmeans_10000.pt"
    import pickle

    indexes = {}
    for name in ("a", "b"):
        index = faiss.IndexFlatL2(dim)
        index.add(rng.standard_normal((7, dim)).astype(np.float32))
        indexes[name] = index
    (folder / "feature_and_index.pkl").write_bytes(pickle.dumps(indexes))
    return folder / "feature_and_index.pkl", folder / "kmeans_10000.pt"


def write_tiny_diffusion(folder: Path) -> list[str | Path]:
    """A tiny NSF-HiFiGAN vocoder and Unit2Mel on disk, as users have them: CLI arguments."""
    from diffusion_helpers import tiny_config, tiny_unit2mel, tiny_vocoder

    from svc_train.diffusion.nsf_hifigan import save_vocoder

    vocoder_model = save_vocoder(tiny_vocoder(2), folder / "nsf_hifigan")
    config = tiny_config()
    config.save(folder / "diffusion.yaml")
    torch.save({"model": tiny_unit2mel(config).state_dict()}, folder / "model_0.pt")
    return ["--vocoder", vocoder_model, "--diffusion-checkpoint", folder / "model_0.pt",
            "--diffusion-config", folder / "diffusion.yaml"]


@pytest.fixture(scope="module")
def cli_bundle(tiny_model, tmp_path_factory):
    torch.set_num_threads(1)
    checkpoint, config = tiny_model
    work = tmp_path_factory.mktemp("cli")
    index, kmeans = write_sovits_retrieval_files(work, 64)
    centres_c = work / "centres.npy"
    np.save(centres_c, np.ones((3, 64), np.float32))
    out = work / "bundle"
    extra = ["--index", index] if index else []
    extra += write_tiny_diffusion(work)
    result = run_cli(
        checkpoint, "--config", config, "-o", out, "--encoder-checkpoint", CONTENTVEC / "fairseq_checkpoint.pt",
        "--pitch", "fcpe", "--cluster", kmeans, "--cluster", f"c={centres_c}", "--no-simplify", *extra,
    )
    assert result.exit_code == 0, result.output
    return out, result.output, index is not None


def test_cli_writes_a_complete_bundle(cli_bundle):
    out, output, _ = cli_bundle
    assert "vs PyTorch" in output and "max abs error" in output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "svc-bundle" and manifest["schema_version"] == 3
    assert set(manifest["graphs"]) == {
        "converter", "converter_f0", "synthesis", "generator", "speech_encoder", "pitch", "nsf_hifigan",
        "diffusion_condition", "diffusion_denoiser"}
    assert "audio_in" in {i["name"] for i in manifest["graphs"]["converter"]["inputs"]}  # vol_embedding model
    assert manifest["model"]["vol_embedding"] is True and manifest["model"]["speakers"] == {"a": 0, "b": 1, "c": 2}
    assert manifest["speech_encoder"] == {
        "name": "vec768l12", "sampling_rate": 16000, "hop_length": 320, "dim": 64, "graph": "speech_encoder"
    }
    pitch = manifest["pitch"]
    assert (pitch["method"], pitch["hop_length"], pitch["decoder"], pitch["threshold"]) == ("fcpe", 160, "local_argmax", 0.05)
    assert (pitch["f0_min"], pitch["f0_max"]) == (50.0, 1100.0)
    assert pitch["bins_f0_min"] == pytest.approx(32.70, abs=0.01) and pitch["bins_f0_max"] == pytest.approx(1975.5, abs=0.1)
    assert [g["name"] for g in manifest["graphs"]["generator"]["inputs"]][-1] == "vol"
    clusters = {a["speaker"]: a for a in manifest["aux_files"] if a["kind"] == "cluster"}
    assert {s: (a["file"], a["format"]) for s, a in clusters.items()} == {
        "a": ("cluster_0_a.npy", "npy"), "b": ("cluster_1_b.npy", "npy"), "c": ("cluster_2_c.npy", "npy")}
    kmeans = torch.load(out.parent / "kmeans_10000.pt", weights_only=False)
    assert np.array_equal(np.load(out / "cluster_1_b.npy"), kmeans["b"]["cluster_centers_"])
    if cli_bundle[2]:
        import faiss

        indexes = {a["speaker"]: a["file"] for a in manifest["aux_files"] if a["kind"] == "index"}
        assert indexes == {"a": "index_0_a.index", "b": "index_1_b.index"}
        index = faiss.read_index(str(out / "index_1_b.index"))
        assert (index.d, index.ntotal) == (64, 7)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".bundle")]
    for name, bound in (("generator", 1e-4), ("speech_encoder", 1e-4), ("pitch", 1e-5)):
        records = manifest["graphs"][name]["parity"]
        assert len({r["length"] for r in records}) == 3, name
        assert all(r["max_abs_error"] <= min(bound, r["tolerance"]) for r in records), records


def test_cli_bundle_carries_shallow_diffusion(cli_bundle):
    from svc_runtime.diffusion import ShallowDiffusion

    out = cli_bundle[0]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["diffusion"]["timesteps"] == 100 and manifest["diffusion"]["vocoder"]["graph"] == "nsf_hifigan.onnx"
    for name in ("nsf_hifigan", "diffusion_condition", "diffusion_denoiser"):
        records = manifest["graphs"][name]["parity"]
        assert len({r["length"] for r in records}) == 3 and all(r["max_abs_error"] <= 1e-4 for r in records)
    assert {"kind": "diffusion", "file": "diffusion.json", "format": "json"}.items() <= next(
        a for a in manifest["aux_files"] if a["kind"] == "diffusion").items()
    diffusion = ShallowDiffusion.load(out)
    assert diffusion.spec.n_spk == 2 and diffusion.spec.vocoder.hop_size == 64


def test_cli_bundle_runs_encoder_pitch_and_volume(cli_bundle):
    bundle = Bundle.load(cli_bundle[0])
    ref = np.load(CONTENTVEC / "io.npz")
    units = bundle.encode_units(ref["wav"])
    assert units.shape == (1, 64, 68)
    assert np.abs(units - ref["vec_last"].transpose(0, 2, 1)).max() < 1e-4
    salience = bundle.pitch_salience(ref["wav"])
    assert salience.shape == (1, ref["wav"].size // 160 + 1, 360)
    frames = 20
    c, f0 = np.repeat(units[:, :, :1], frames, axis=2), np.full((1, frames), 200.0, np.float32)
    uv = np.ones((1, frames), np.float32)
    quiet = bundle.generate(c, f0, uv, "c", vol=np.full((1, frames), 0.01, np.float32), seed=1)
    loud = bundle.generate(c, f0, uv, "c", vol=np.full((1, frames), 0.5, np.float32), seed=1)
    assert quiet.shape == (1, 1, frames * 512) and np.abs(quiet - loud).max() > 1e-4
    with pytest.raises(ValueError, match="embeds volume"):
        bundle.generate(c, f0, uv, "c")
    with pytest.raises(ValueError, match="no f0_predictor graph"):
        bundle.predict_f0(c, f0, uv, bundle.one_hot_speakers(0, 1, frames))


def _assert_rejected(result, message: str, out: Path, code: int = 2) -> None:
    assert result.exit_code == code, result.output
    assert message in " ".join(result.output.split()), result.output
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_missing_file_fails_before_any_work(tmp_path):
    out = tmp_path / "bundle"
    _assert_rejected(run_cli(tmp_path / "G_404.pth", "--config", SMALL / "config.json", "-o", out),
                     "does not exist", out)
    _assert_rejected(run_cli(SMALL / "G_1.pth", "--config", SMALL / "config.json", "-o", out,
                             "--pitch", "rmvpe", "--pitch-checkpoint", tmp_path / "rmvpe.pt"), "does not exist", out)


def test_unknown_names_fail_before_any_work(tmp_path):
    out = tmp_path / "bundle"
    base = (SMALL / "G_1.pth", "--config", SMALL / "config.json", "-o", out)
    _assert_rejected(run_cli(*base, "--encoder", "vec999", "--encoder-checkpoint", CONTENTVEC / "fairseq_checkpoint.pt"),
                     "unknown speech encoder 'vec999'", out)
    _assert_rejected(run_cli(*base, "--pitch", "swipe"), "unknown method 'swipe'", out)
    _assert_rejected(run_cli(*base, "--pitch", "rmvpe"), "--pitch rmvpe needs --pitch-checkpoint", out)
    _assert_rejected(run_cli(*base, "--diffusion-checkpoint", SMALL / "G_1.pth"), "go together", out)
    _assert_rejected(run_cli(*base, "--diffusion-checkpoint", SMALL / "G_1.pth", "--diffusion-config",
                             SMALL / "config.json"), "add --vocoder PATH", out)
    _assert_rejected(run_cli(*base, "--encoder", "vec256l9", "--encoder-checkpoint",
                             CONTENTVEC / "fairseq_checkpoint.pt"), "trained with 'vec768l12'", out)


def test_checkpoint_not_matching_config_fails_before_any_work(tiny_model, tmp_path):
    out = tmp_path / "bundle"
    _assert_rejected(run_cli(SMALL / "G_1.pth", "--config", tiny_model[1], "-o", out), "does not fit config", out)


def test_encoder_with_wrong_unit_size_is_rejected(tmp_path):
    out = tmp_path / "bundle"
    _assert_rejected(run_cli(SMALL / "G_1.pth", "--config", SMALL / "config.json", "-o", out,
                             "--encoder-checkpoint", CONTENTVEC / "fairseq_checkpoint.pt"),
                     "the model needs [B, 768, frames]", out)


def test_trt_without_tensorrt_or_gpu_stops_cleanly(tmp_path):
    out = tmp_path / "bundle"
    result = run_cli(SMALL / "G_1.pth", "--config", SMALL / "config.json", "-o", out, "--trt", "fp16")
    try:
        import tensorrt  # noqa: F401

        has_trt = torch.cuda.is_available()
    except ImportError:
        has_trt = False
    if has_trt:
        pytest.skip("tensorrt and a GPU are present")
    _assert_rejected(result, "--trt needs", out, code=3)  # a missing optional dependency (README: exit codes)
    _assert_rejected(run_cli(SMALL / "G_1.pth", "--config", SMALL / "config.json", "-o", out, "--trt", "int8"),
                     "--trt must be fp16 or fp32", out)


def test_refuses_to_replace_a_folder_that_is_not_a_bundle(tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = run_cli(SMALL / "G_1.pth", "--config", SMALL / "config.json", "-o", out)
    assert result.exit_code == 2 and "holds no manifest.json" in " ".join(result.output.split())
    assert (out / "notes.txt").read_text() == "keep me"


def test_bad_retrieval_files_fail_before_any_work(tiny_model, tmp_path):
    checkpoint, config = tiny_model
    out = tmp_path / "bundle"
    base = (checkpoint, "--config", config, "-o", out)
    centres = tmp_path / "centres.npy"
    np.save(centres, np.ones((3, 64), np.float32))
    _assert_rejected(run_cli(*base, "--cluster", centres), f"--cluster SPEAKER={centres}", out)
    _assert_rejected(run_cli(*base, "--cluster", f"zed={centres}"), "unknown speaker 'zed'", out)
    np.save(centres, np.ones((3, 32), np.float32))
    _assert_rejected(run_cli(*base, "--cluster", f"a={centres}"), "must be a float [K, 64] array", out)
    torch.save({"zed": {"cluster_centers_": np.ones((2, 64), np.float32)}}, tmp_path / "kmeans.pt")
    _assert_rejected(run_cli(*base, "--cluster", tmp_path / "kmeans.pt"), "speaker 'zed' is not one of", out)
    evil = tmp_path / "feature_and_index.pkl"
    evil.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    _assert_rejected(run_cli(*base, "--index", evil), "refusing to unpickle global 'os.system'", out)


def test_help_lists_the_options():
    result = run_cli("--help")
    assert result.exit_code == 0
    for option in ("--config", "--output", "--encoder-checkpoint", "--pitch", "--fp16", "--trt", "--index"):
        assert option in result.output


def test_cli_bundle_copy_keeps_working(cli_bundle, tmp_path):
    """A bundle is self-contained: a copied folder loads and verifies."""
    copy = tmp_path / "moved"
    shutil.copytree(cli_bundle[0], copy)
    assert Bundle.load(copy).speakers == {"a": 0, "b": 1, "c": 2}
