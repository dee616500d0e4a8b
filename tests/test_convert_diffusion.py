"""`svc-run convert --shallow-diffusion / --only-diffusion / --enhance` with an exported bundle.

The bundle holds the pipeline fixture's generator and speech encoder (tests/pipeline_fixture.py)
plus a tiny random diffusion model and NSF-HiFiGAN vocoder on the generator's frame grid
(44.1 kHz, hop 512), all written by `svc-export` (`--vocoder`, `--diffusion-checkpoint`,
`--diffusion-config`). Random weights: the checks are lengths to the sample, finiteness,
that each mode changes the audio, determinism, and the errors.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from typer.testing import CliRunner

from svc_runtime.bundle import Bundle
from svc_runtime.cli import app
from svc_runtime.diffusion import ShallowDiffusion
from svc_runtime.pipeline import ConvertOptions, Converter
from tests.pipeline_fixture import FIXTURES, HOP, SR, vibrato_tone

runner = CliRunner()
MELS = 32


def diffusion_config(units: int):
    from svc_train.diffusion.config import DiffusionConfig

    raw = {
        "data": {"sampling_rate": SR, "block_size": HOP, "duration": 0.5, "encoder_out_channels": units,
                 "training_files": "train.txt", "validation_files": "val.txt"},
        "model": {"n_layers": 2, "n_chans": 16, "n_hidden": 16, "use_pitch_aug": True, "timesteps": 100,
                  "k_step_max": 0, "n_spk": 2},
        "vocoder": {"type": "nsf-hifigan", "ckpt": "nsf_hifigan/model"},
        "infer": {"speedup": 10, "method": "dpm-solver++"},
        "env": {"expdir": "exp"},
        "train": {"batch_size": 4, "num_workers": 0, "lr": 0.002, "cache_fp16": False},
        "spk": {"alice": 0, "bob": 1},
    }
    return DiffusionConfig.from_dict(raw)


@pytest.fixture(scope="module")
def diffusion_bundle(tmp_path_factory) -> Path:
    """Generator + encoder + diffusion model + vocoder, exported in one `svc-export` run."""
    from svc_export.exporter import ExportRequest, export_bundle
    from svc_train.checkpoint import build_generator, save_checkpoint
    from svc_train.diffusion.nsf_hifigan import NsfHifiGan, VocoderConfig, save_vocoder
    from svc_train.diffusion.unit2mel import Unit2Mel

    torch.set_num_threads(2)
    work = tmp_path_factory.mktemp("diffusion_bundle")
    config = json.loads((FIXTURES / "sovits41_small" / "config.json").read_text())
    config["model"]["ssl_dim"] = 64
    (work / "config.json").write_text(json.dumps(config, indent=2))
    torch.manual_seed(1234)
    save_checkpoint(work / "G.pth", build_generator(work / "config.json"), 0, 1e-4)
    torch.manual_seed(5)
    vocoder = NsfHifiGan(VocoderConfig(
        sampling_rate=SR, num_mels=MELS, n_fft=2048, win_size=2048, hop_size=HOP, fmin=40.0, fmax=16000.0,
        upsample_rates=(8, 8, 8), upsample_kernel_sizes=(16, 16, 16), upsample_initial_channel=32,
        resblock_kernel_sizes=(3, 5), resblock_dilation_sizes=((1, 3, 5), (1, 3, 5)),
    ))
    save_vocoder(vocoder, work / "nsf_hifigan")
    d_config = diffusion_config(64)
    torch.manual_seed(6)
    model = Unit2Mel.from_config(d_config, MELS)
    torch.nn.init.normal_(model.decoder.denoise_fn.output_projection.weight, std=0.2)  # eps != 0
    torch.save({"global_step": 1, "model": model.state_dict()}, work / "model_1.pt")
    d_config.save(work / "diffusion.yaml")
    export_bundle(ExportRequest(
        checkpoint=work / "G.pth", config=work / "config.json", output=work / "bundle",
        encoder_checkpoint=FIXTURES / "contentvec_small" / "fairseq_checkpoint.pt",
        vocoder=work / "nsf_hifigan" / "model", diffusion_checkpoint=work / "model_1.pt",
        diffusion_config=work / "diffusion.yaml", simplify=False,
    ))
    return work / "bundle"


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("song")
    audio, _ = vibrato_tone(1.3)
    soundfile.write(folder / "song.wav", audio, SR)
    return folder / "song.wav"


def convert(bundle: Path, song: Path, out: Path, *flags: str) -> np.ndarray:
    args = ["convert", str(song), "-m", str(bundle), "-o", str(out), "--speaker", "bob", "--f0-method", "pm", *flags]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    audio, sr = soundfile.read(out / "song.wav", dtype="float32")
    assert sr == SR
    return audio


@pytest.fixture(scope="module")
def plain(diffusion_bundle, song, tmp_path_factory) -> np.ndarray:
    return convert(diffusion_bundle, song, tmp_path_factory.mktemp("plain"))


@pytest.mark.parametrize("flags", [
    ("--shallow-diffusion", "--k-step", "60"),
    ("--shallow-diffusion", "--k-step", "30", "--diffusion-method", "ddim", "--diffusion-speedup", "5"),
    ("--only-diffusion",),
    ("--enhance",),
    ("--enhance", "--enhancer-adaptive-key", "4"),
])
def test_each_mode_keeps_the_length_and_changes_the_audio(diffusion_bundle, song, plain, tmp_path, flags):
    n_in = soundfile.info(song).frames
    audio = convert(diffusion_bundle, song, tmp_path / "a", *flags)
    assert audio.shape == plain.shape == (n_in,)
    assert np.all(np.isfinite(audio))
    assert np.sqrt(np.mean(audio**2)) > 1e-4  # not silence
    assert np.max(np.abs(audio - plain)) > 1e-2  # the mode did change the output
    again = convert(diffusion_bundle, song, tmp_path / "b", *flags)
    assert np.array_equal(audio, again)  # seeded: reproducible


def test_shallow_diffusion_depends_on_k_step_and_ignores_enhance(diffusion_bundle, song, tmp_path):
    a = convert(diffusion_bundle, song, tmp_path / "a", "--shallow-diffusion", "--k-step", "60")
    b = convert(diffusion_bundle, song, tmp_path / "b", "--shallow-diffusion", "--k-step", "20")
    c = convert(diffusion_bundle, song, tmp_path / "c", "--shallow-diffusion", "--k-step", "60", "--enhance")
    assert np.max(np.abs(a - b)) > 1e-3
    assert np.array_equal(a, c)  # as so-vits-svc: the enhancer is off with shallow diffusion


def test_chunked_shallow_diffusion_stays_close_to_one_window(diffusion_bundle):
    """Forced 2 s windows (three chunks over a 5 s tone) against one window: the diffusion noise and the
    vocoder's sine phases follow the slice, so the chunk joins stay close to the whole-window render."""
    bundle = Bundle.load(diffusion_bundle)
    tone, _ = vibrato_tone(5.0)
    base = dict(speaker="alice", f0_method="pm", shallow_diffusion=True, k_step=40, context_seconds=0.5)
    whole = Converter(bundle, ConvertOptions(**base)).convert(tone, SR)
    chunked = Converter(bundle, ConvertOptions(**base, clip_seconds=2.0)).convert(tone, SR)
    assert whole.shape == chunked.shape == tone.shape
    rms = np.sqrt(np.mean(whole**2))
    assert np.sqrt(np.mean((whole - chunked) ** 2)) < 0.25 * rms


def test_bundle_exposes_the_diffusion_runtime_over_its_sessions(diffusion_bundle):
    bundle = Bundle.load(diffusion_bundle)
    assert bundle.has_diffusion and bundle.has_enhancer
    assert not bundle.has_graph("diffusion_denoiser")  # opened on first use only
    diffusion = bundle.diffusion()
    assert isinstance(diffusion, ShallowDiffusion) and bundle.diffusion() is diffusion
    assert {"diffusion_condition", "diffusion_denoiser", "vocoder"} <= set(bundle.sessions)
    assert (diffusion.spec.sampling_rate, diffusion.spec.hop_size, diffusion.spec.k_step_max) == (SR, HOP, 100)
    assert bundle.enhancer().vocoder.session is bundle.sessions["vocoder"]
    with pytest.raises(ValueError, match=r"k_step 101: .* at most 100"):
        Converter(bundle, ConvertOptions(speaker="alice", f0_method="pm", shallow_diffusion=True, k_step=101))
    diffusion.spec = dataclasses.replace(diffusion.spec, k_step_max=50)  # a model trained for shallow only
    with pytest.raises(ValueError, match="shallow diffusion only"):
        Converter(bundle, ConvertOptions(speaker="alice", f0_method="pm", only_diffusion=True))


def test_options_refuse_bad_combinations():
    with pytest.raises(ValueError, match="not both"):
        ConvertOptions(shallow_diffusion=True, only_diffusion=True)
    with pytest.raises(ValueError, match="diffusion method must be one of"):
        ConvertOptions(shallow_diffusion=True, diffusion_method="euler")
    with pytest.raises(ValueError, match="speedup must be >= 2"):
        ConvertOptions(shallow_diffusion=True, diffusion_speedup=1)


def without_diffusion(bundle: Path, target: Path, keep_vocoder: bool) -> Path:
    """A copy of `bundle` as svc-export writes it without --diffusion-* (keep_vocoder: with --vocoder only)
    or without any of the three options."""
    shutil.copytree(bundle, target)
    manifest = json.loads((target / "manifest.json").read_text())
    dropped = {"diffusion_condition", "diffusion_denoiser"} | (set() if keep_vocoder else {"vocoder"})
    for name in [n for n, g in manifest["graphs"].items() if g["role"] in dropped]:
        (target / manifest["graphs"].pop(name)["file"]).unlink()
    manifest["aux_files"] = [a for a in manifest["aux_files"] if a["kind"] != "diffusion"]
    (target / "diffusion.json").unlink()
    if keep_vocoder:
        manifest["diffusion"] = {"vocoder": manifest["diffusion"]["vocoder"]}
    else:
        del manifest["diffusion"]
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return target


@pytest.mark.parametrize("keep_vocoder, flag, needs", [
    (False, "--shallow-diffusion", "--diffusion-checkpoint"),
    (False, "--only-diffusion", "--diffusion-checkpoint"),
    (False, "--enhance", "--vocoder"),
    (True, "--shallow-diffusion", "--diffusion-checkpoint"),
])
def test_a_bundle_without_the_graphs_is_a_clear_error(diffusion_bundle, song, tmp_path, keep_vocoder, flag, needs):
    bundle = without_diffusion(diffusion_bundle, tmp_path / "bundle", keep_vocoder)
    args = ["convert", str(song), "-m", str(bundle), "-o", str(tmp_path / "out"), "--speaker", "bob",
            "--f0-method", "pm", flag]
    result = runner.invoke(app, args)
    flat = re.sub(r"\s+", " ", result.output)
    assert result.exit_code == 2, flat
    assert "error:" in flat and needs in flat
    assert not (tmp_path / "out" / "song.wav").exists()


def test_a_vocoder_only_bundle_enhances(diffusion_bundle, song, tmp_path):
    bundle = without_diffusion(diffusion_bundle, tmp_path / "bundle", keep_vocoder=True)
    assert Bundle.load(bundle).has_enhancer and not Bundle.load(bundle).has_diffusion
    enhanced = convert(bundle, song, tmp_path / "out", "--enhance")
    assert np.array_equal(enhanced, convert(diffusion_bundle, song, tmp_path / "full", "--enhance"))
