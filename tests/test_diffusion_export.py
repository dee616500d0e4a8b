"""Export of the diffusion graphs and the vocoder, and the numpy runtime over them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from diffusion_helpers import HOP, MELS, SR, UNITS, tiny_config, tiny_unit2mel, tiny_vocoder
from test_diffusion_model import acf_pitch, cents, spectral_peak

from svc_export.diffusion_graphs import PARITY_FRAMES, export_diffusion
from svc_runtime.diffusion import DiffusionSpec, Enhancer, ShallowDiffusion, adaptive_rate, log_mel
from svc_runtime.signal.nsf_phase import frame_start_phases

torch.set_num_threads(1)
FRAMES = 60
F0_HZ = 330.0  # away from the random vocoder's frame-rate line at SR / HOP = 250 Hz and its multiples
VOCODER_SEED = 2  # a random vocoder whose source reaches the output clearly (see test_shallow_render_...)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("diffusion_bundle")
    config = tiny_config()
    model = tiny_unit2mel(config)
    vocoder = tiny_vocoder(VOCODER_SEED)
    result = export_diffusion(folder, vocoder, model, config)
    return folder, result, model, vocoder


def inputs(seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    units = torch.randn(1, UNITS, FRAMES, generator=g)
    f0 = torch.full((1, FRAMES), F0_HZ)
    volume = 0.2 + 0.1 * torch.rand(1, FRAMES, generator=g)
    noise = torch.randn(1, 1, MELS, FRAMES, generator=g)
    return units, f0, volume, noise


def harmonic_tone(frames: int, hz: float) -> np.ndarray:
    t = np.arange(frames * HOP) / SR
    return sum(0.25 / h * np.sin(2 * np.pi * h * hz * t) for h in range(1, 6)).astype(np.float32)


def test_graphs_match_torch_at_three_lengths_and_are_described(exported):
    folder, result, _, _ = exported
    names = {g["name"]: g for g in result["graphs"]}
    assert set(names) == {"nsf_hifigan", "diffusion_condition", "diffusion_denoiser"}
    for graph in names.values():
        assert sorted({p["length"] for p in graph["parity"]}) == sorted(PARITY_FRAMES)
        assert all(p["max_abs_error"] <= p["tolerance"] <= 1e-4 for p in graph["parity"])
        assert hashlib.sha256((folder / graph["file"]).read_bytes()).hexdigest() == graph["sha256"]
    assert [i["name"] for i in names["diffusion_denoiser"]["inputs"]] == ["x", "t", "cond"]
    assert names["nsf_hifigan"]["outputs"][0]["shape"] == ["batch", 1, "samples"]
    spec = DiffusionSpec.from_dict(json.loads((folder / "diffusion.json").read_text()), "diffusion.json")
    assert (spec.timesteps, spec.k_step_max, spec.n_spk, spec.vocoder.hop_size) == (100, 100, 2, HOP)


@pytest.mark.parametrize("method", ["ddim", "pndm", "dpm-solver", "dpm-solver++", "unipc"])
def test_numpy_sampler_over_onnx_matches_torch(exported, method):
    folder, _, model, _ = exported
    runtime = ShallowDiffusion.load(folder)
    units, f0, volume, noise = inputs()
    gt_mel = torch.randn(1, MELS, FRAMES) - 4.0
    with torch.no_grad():
        want = model.infer(units.transpose(1, 2), f0[..., None], volume[..., None], torch.tensor([[1]]),
                           gt_mel=gt_mel.transpose(1, 2), k_step=60, method=method, speedup=10, noise=noise)
    got = runtime.render_mel(units.numpy(), f0.numpy(), volume.numpy(), 1, gt_mel.numpy(), 60, method, 10, noise.numpy())
    assert got.shape == (1, MELS, FRAMES)
    assert np.max(np.abs(got - want.transpose(1, 2).numpy())) < 1e-4
    assert np.mean(np.abs(got - gt_mel.numpy())) > 0.1  # the sampler did change the mel


def test_only_diffusion_from_noise_matches_torch(exported):
    folder, _, model, _ = exported
    runtime = ShallowDiffusion.load(folder)
    units, f0, volume, noise = inputs(5)
    with torch.no_grad():
        want = model.infer(units.transpose(1, 2), f0[..., None], volume[..., None], torch.tensor([[0]]),
                           gt_mel=None, method="dpm-solver++", speedup=10, noise=noise)
    got = runtime.render_mel(units.numpy(), f0.numpy(), volume.numpy(), 0, None, None, "dpm-solver++", 10, noise.numpy())
    assert np.max(np.abs(got - want.transpose(1, 2).numpy())) < 1e-4
    audio = runtime.only_diffusion(units.numpy(), f0.numpy(), volume.numpy(), sid=0)
    assert audio.shape == (1, 1, FRAMES * HOP) and np.all(np.isfinite(audio))


def test_shallow_render_has_the_right_length_and_pitch(exported):
    """Generator-like audio at 330 Hz through shallow diffusion (ONNX) and the random-weight vocoder.

    The vocoder's weights are random, so the measurement is on what the F0 drives: the
    voiced-minus-unvoiced render of the same mel is pitched at F0 (full-range search), and
    the full output keeps a spectral line at F0. The torch vocoder with the same phases and
    noise gives the same samples.
    """
    folder, _, _, vocoder = exported
    runtime = ShallowDiffusion.load(folder)
    units, f0, volume, _ = inputs()
    audio_in = harmonic_tone(FRAMES, F0_HZ)[None, None]
    sine_noise = np.zeros((1, FRAMES * HOP, 9), np.float32)
    out = runtime.shallow(audio_in, units.numpy(), f0.numpy(), volume.numpy(), sid=1, k_step=50,
                          method="dpm-solver++", speedup=10, seed=7, sine_noise=sine_noise)
    assert out.shape == (1, 1, FRAMES * HOP) and np.all(np.isfinite(out))
    voiced = out[0, 0, 5 * HOP :]
    assert abs(cents(spectral_peak(voiced, SR, F0_HZ, width_cents=100), F0_HZ)) < 5.0

    mel = runtime.render_mel(units.numpy(), f0.numpy(), volume.numpy(), 1, runtime.vocoder.mel(audio_in[0], SR), 50,
                             "dpm-solver++", 10, seed=7)
    unvoiced = runtime.vocoder(mel, np.zeros_like(f0.numpy()), sine_noise=sine_noise)[0, 0, 5 * HOP :]

    def line_db(x):
        n = 8 * len(x)
        spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n))
        freqs = np.fft.rfftfreq(n, 1 / SR)
        line = spectrum[np.abs(freqs - F0_HZ) < 3].max()
        around = np.median(spectrum[(np.abs(freqs - F0_HZ) > 15) & (np.abs(freqs - F0_HZ) < 60)])
        return 20 * np.log10(line / around)

    # The part of the output the F0 drives (same mel rendered voiced minus unvoiced) is pitched at F0,
    # found over the whole 60-1000 Hz range; in the full output (whose strongest periodicity, with random
    # weights, is the frame rate) the F0 line still stands out from its neighbourhood.
    driven = voiced - unvoiced
    assert abs(cents(acf_pitch(driven, SR), F0_HZ)) < 2.0
    assert line_db(driven) > 20.0
    assert line_db(voiced) > 6.0 and line_db(voiced) > line_db(unvoiced) + 4.0

    phase, _ = frame_start_phases(f0.numpy(), HOP, source_sr=SR)
    with torch.no_grad():
        want = vocoder(torch.from_numpy(mel), f0, torch.from_numpy(phase.astype(np.float32)), torch.from_numpy(sine_noise))
    got = runtime.vocoder(mel, f0.numpy(), sine_noise=sine_noise)
    assert np.max(np.abs(got - want.numpy())) < 1e-4


def test_enhancer_keeps_length_and_rate_and_follows_f0(exported):
    folder, _, _, vocoder = exported
    enhancer = Enhancer.load(folder)
    tone = harmonic_tone(FRAMES, F0_HZ)
    f0 = np.full(FRAMES, F0_HZ)
    plain = enhancer.enhance(tone, SR, f0, HOP, adaptive_key=0, seed=None)
    assert plain.shape == tone.shape and plain.dtype == np.float32
    mel = log_mel(tone, enhancer.vocoder.spec.mel)
    with torch.no_grad():
        direct = vocoder(torch.from_numpy(mel), torch.full((1, mel.shape[-1]), F0_HZ))[0, 0].numpy()
    assert np.max(np.abs(plain[: len(direct)] - direct)) < 1e-4  # key 0 at the vocoder's rate: no resampling
    assert adaptive_rate(SR, 4) == 20200 and adaptive_rate(44100, 0) == 44100
    # Adaptive key 4: played at 20.2 kHz the tone is 261.4 Hz to the vocoder, its F0 scaled alike, and the
    # output read back at 20.2 kHz -- so what the F0 drives (voiced minus unvoiced) is at 330 Hz again.
    shifted = enhancer.enhance(tone, SR, f0, HOP, adaptive_key=4, seed=None)
    assert shifted.shape == tone.shape and np.all(np.isfinite(shifted))
    driven = shifted - enhancer.enhance(tone, SR, np.zeros_like(f0), HOP, adaptive_key=4, seed=None)
    assert abs(cents(acf_pitch(driven[5 * HOP : -5 * HOP], SR), F0_HZ)) < 2.0


def test_runtime_refuses_out_of_range_requests(exported):
    folder, _, _, _ = exported
    runtime = ShallowDiffusion.load(folder)
    units, f0, volume, _ = inputs()
    args = (units.numpy(), f0.numpy(), volume.numpy())
    with pytest.raises(ValueError, match="speaker id must be in"):
        runtime.render_mel(*args, sid=2, gt_mel=np.zeros((1, MELS, FRAMES), np.float32), k_step=10, method="ddim")
    with pytest.raises(ValueError, match="k_step must be in"):
        runtime.render_mel(*args, sid=0, gt_mel=np.zeros((1, MELS, FRAMES), np.float32), k_step=101)
    runtime.spec = dataclasses.replace(runtime.spec, k_step_max=50)
    with pytest.raises(ValueError, match="shallow diffusion only"):
        runtime.render_mel(*args, sid=0)
    with pytest.raises(ValueError, match="units have"):
        runtime.render_mel(np.zeros((1, UNITS + 1, FRAMES), np.float32), f0.numpy(), volume.numpy())


def test_runtime_diffusion_import_stays_lean():
    code = "import sys, svc_runtime.diffusion; print(sorted(m for m in ('torch', 'librosa') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_bundle_style_sessions_give_the_same_render(exported):
    """Sessions with the bundle's interface (run(feeds) -> {name: array}) work as plain ORT ones."""
    folder, _, _, _ = exported
    plain = ShallowDiffusion.load(folder)

    class DictSession:
        def __init__(self, session):
            self.session = session
            self.output_names = tuple(o.name for o in session.get_outputs())

        def run(self, feeds):
            return dict(zip(self.output_names, self.session.run(None, feeds)))

    wrapped = ShallowDiffusion(plain.spec, DictSession(plain.condition), DictSession(plain.denoiser),
                               DictSession(plain.vocoder.session))
    units, f0, volume, noise = inputs()
    args = (units.numpy(), f0.numpy(), volume.numpy(), 1, np.zeros((1, MELS, FRAMES), np.float32) - 4, 30, "pndm", 10,
            noise.numpy())
    assert np.array_equal(wrapped.render_mel(*args), plain.render_mel(*args))


def test_networks_load_from_user_files_for_export(tmp_path):
    """The files a user has (nsf_hifigan/model + config.json, model_*.pt + diffusion.yaml) feed the export."""
    from svc_export.diffusion_graphs import diffusion_plans, load_networks
    from svc_train.diffusion.nsf_hifigan import save_vocoder

    config = tiny_config()
    config.vocoder.type = "nsf-hifigan-log10"
    model = tiny_unit2mel(config)
    torch.save({"global_step": 5, "model": model.state_dict()}, tmp_path / "model_5.pt")
    config.save(tmp_path / "diffusion.yaml")
    save_vocoder(tiny_vocoder(VOCODER_SEED), tmp_path / "nsf_hifigan")
    vocoder, loaded, loaded_config = load_networks(tmp_path / "nsf_hifigan" / "model", tmp_path / "model_5.pt",
                                                   tmp_path / "diffusion.yaml")
    assert vocoder.log10_mel and loaded_config.model.n_chans == 16
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    assert [p.name for p in diffusion_plans(vocoder, loaded)] == ["nsf_hifigan", "diffusion_condition", "diffusion_denoiser"]
    with pytest.raises(ValueError, match="or neither"):
        load_networks(tmp_path / "nsf_hifigan" / "model", tmp_path / "model_5.pt")


def test_sine_phases_pass_through_for_chunk_carry(exported):
    """shallow() takes the sine start phases a chunked caller carries (frame_start_phases(...,
    initial_phase=previous end)); the default is the phase accumulated from 0."""
    folder, _, _, _ = exported
    runtime = ShallowDiffusion.load(folder)
    units, f0, volume, _ = inputs()
    f0 = torch.linspace(200.0, 400.0, FRAMES)[None]
    audio_in = harmonic_tone(FRAMES, F0_HZ)[None, None]
    half = FRAMES // 2
    first, end = frame_start_phases(f0[:, :half].numpy(), HOP, source_sr=SR)
    second, _ = frame_start_phases(f0[:, half:].numpy(), HOP, source_sr=SR, initial_phase=end)
    carried = np.concatenate([first, second], axis=1)
    args = (audio_in, units.numpy(), f0.numpy(), volume.numpy(), 0, 40, "ddim", 10, 3)
    default = runtime.shallow(*args)
    assert np.max(np.abs(runtime.shallow(*args, phase=carried) - default)) < 1e-5
    shifted = runtime.shallow(*args, phase=np.mod(carried + 0.25, 1.0))
    assert np.max(np.abs(shifted - default)) > 1e-3
