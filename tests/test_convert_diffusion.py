"""`svc-run convert --shallow-diffusion / --only-diffusion / --enhance` with an exported bundle.

The bundle (tests/full_bundle_fixture.py) holds the pipeline fixture's generator and speech
encoder plus a tiny random diffusion model and NSF-HiFiGAN vocoder on the generator's frame
grid (44.1 kHz, hop 512), all written by `svc-export` (`--vocoder`, `--diffusion-checkpoint`,
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
from typer.testing import CliRunner

from svc_runtime.bundle import Bundle
from svc_runtime.cli import app
from svc_runtime.diffusion import ShallowDiffusion
from svc_runtime.pipeline import Converter, ConvertOptions
from tests.full_bundle_fixture import full_bundle_dir
from tests.pipeline_fixture import HOP, SR, vibrato_tone

runner = CliRunner()


@pytest.fixture(scope="module")
def diffusion_bundle() -> Path:
    return full_bundle_dir()


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("song")
    audio, _ = vibrato_tone(1.3)
    soundfile.write(folder / "song.wav", audio, SR)
    return folder / "song.wav"


def convert(bundle: Path, song: Path, out: Path, *flags: str, says: str = "") -> np.ndarray:
    args = ["convert", str(song), "-m", str(bundle), "-o", str(out), "--speaker", "bob", "--f0-method", "pm", *flags]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert says in re.sub(r"\s+", " ", result.output)
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
    a = convert(diffusion_bundle, song, tmp_path / "a", "--shallow-diffusion", "--k-step", "60",
                says="shallow diffusion, k_step 60: dpm-solver++, speedup 10")
    b = convert(diffusion_bundle, song, tmp_path / "b", "--shallow-diffusion", "--k-step", "20")
    c = convert(diffusion_bundle, song, tmp_path / "c", "--shallow-diffusion", "--k-step", "60", "--enhance")
    assert np.max(np.abs(a - b)) > 1e-3
    assert np.array_equal(a, c)  # as so-vits-svc: the enhancer is off with shallow diffusion


@pytest.mark.parametrize("mode, tolerance", [
    ({"shallow_diffusion": True, "k_step": 40}, 0.01),  # measured 7e-4
    ({"only_diffusion": True}, 0.01),  # measured 2.2e-3
    ({"enhance": True}, 0.1),  # measured 2.6e-2: the enhancer's sine phases restart in every window
])
def test_chunked_diffusion_stays_close_to_one_window(diffusion_bundle, mode, tolerance):
    """Forced 2 s windows (three chunks over a 5 s tone) against one window, RMS of the difference relative
    to the output's: the diffusion noise and the vocoder's sine phases follow the slice, so the chunk joins
    stay close to the whole-window render."""
    bundle = Bundle.load(diffusion_bundle)
    tone, _ = vibrato_tone(5.0)
    base = dict(speaker="alice", f0_method="pm", context_seconds=0.5, **mode)
    whole = Converter(bundle, ConvertOptions(**base)).convert(tone, SR)
    chunked = Converter(bundle, ConvertOptions(**base, clip_seconds=2.0)).convert(tone, SR)
    assert whole.shape == chunked.shape == tone.shape
    rms = np.sqrt(np.mean(whole**2))
    assert np.sqrt(np.mean((whole - chunked) ** 2)) < tolerance * rms


def test_bundle_exposes_the_diffusion_runtime_over_its_sessions(diffusion_bundle):
    bundle = Bundle.load(diffusion_bundle)
    assert bundle.has_diffusion and bundle.has_enhancer
    assert "diffusion_denoiser" not in bundle.sessions  # opened on first use only
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
    enhanced = convert(bundle, song, tmp_path / "out", "--enhance", says="enhancer: NSF-HiFiGAN, adaptive key 0")
    assert np.array_equal(enhanced, convert(diffusion_bundle, song, tmp_path / "full", "--enhance"))
