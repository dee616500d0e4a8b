"""Diffusion model pieces: config, mel front ends, vocoder loading and pitch, samplers."""

from __future__ import annotations

import json

import librosa
import numpy as np
import pytest
import torch
from diffusion_helpers import HOP, MELS, SR, UNITS, tiny_config, tiny_unit2mel, tiny_vocoder, tiny_vocoder_config

from svc_runtime.diffusion.mel import log_mel, slaney_mel_filterbank
from svc_runtime.diffusion.samplers import DiscreteVPSchedule, sample, sampler_steps
from svc_runtime.diffusion.schedule import NoiseSchedule
from svc_runtime.signal.nsf_phase import frame_start_phases
from svc_train.diffusion.config import DiffusionConfig, DiffusionConfigError
from svc_train.diffusion.nsf_hifigan import VocoderLoadError, load_vocoder, save_vocoder
from svc_train.diffusion.vocoder_mel import VocoderMel

torch.set_num_threads(1)


def acf_pitch(x: np.ndarray, sr: int, fmin: float = 60.0, fmax: float = 1000.0) -> float:
    """Autocorrelation pitch: the first lag whose peak reaches 90% of the best one (no octave jumps)."""
    x = x - x.mean()
    ac = np.fft.irfft(np.abs(np.fft.rfft(x, 2 * len(x))) ** 2)[: len(x)]
    ac /= ac[0]
    lo, hi = int(sr / fmax), int(sr / fmin)
    best = ac[lo:hi].max()
    lag = next(i for i in range(lo + 1, hi) if ac[i] >= 0.9 * best and ac[i] >= ac[i - 1] and ac[i] >= ac[i + 1])
    return spectral_peak(x, sr, sr / lag)


def spectral_peak(x: np.ndarray, sr: int, near: float, width_cents: float = 300.0) -> float:
    """Frequency of the strongest spectral line within +-width_cents of ``near`` (Hann, 8x zero padding,
    parabolic interpolation on the log magnitude)."""
    n = 8 * len(x)
    magnitude = np.log(np.abs(np.fft.rfft((x - x.mean()) * np.hanning(len(x)), n)) + 1e-12)
    freqs = np.fft.rfftfreq(n, 1 / sr)
    ratio = 2 ** (width_cents / 1200)
    band = np.flatnonzero((freqs > near / ratio) & (freqs < near * ratio))
    k = band[np.argmax(magnitude[band])]
    a, b, c = magnitude[k - 1], magnitude[k], magnitude[k + 1]
    return float(freqs[k] + 0.5 * (a - c) / (a - 2 * b + c) * sr / n)


def cents(f: float, ref: float) -> float:
    return 1200.0 * np.log2(f / ref)


# -- config -------------------------------------------------------------------------------------
def test_config_reads_the_so_vits_template_and_names_bad_fields(tmp_path):
    path = tmp_path / "diffusion.yaml"
    path.write_text(
        "data:\n  sampling_rate: 44100\n  block_size: 512\n  encoder_out_channels: 768\nmodel:\n  n_layers: 20\n"
        "  n_chans: 512\n  n_hidden: 256\n  timesteps: 1000\n  k_step_max: 100\n  n_spk: 1\ninfer:\n  speedup: 10\n"
        "  method: 'dpm-solver++'\nspk:\n  'nyaru': 0\nunknown_section: 3\n"
    )
    config = DiffusionConfig.load(path)
    assert (config.model.n_chans, config.k_step_max, config.train.batch_size) == (512, 100, 48)
    path.write_text("model:\n  k_step_max: 2000\n")
    with pytest.raises(DiffusionConfigError, match="k_step_max"):
        DiffusionConfig.load(path)
    path.write_text("infer:\n  method: euler\n")
    with pytest.raises(DiffusionConfigError, match="infer.method"):
        DiffusionConfig.load(path)
    path.write_text("model:\n  n_layers: many\n")
    with pytest.raises(DiffusionConfigError, match="model.n_layers must be an integer"):
        DiffusionConfig.load(path)
    with pytest.raises(DiffusionConfigError, match="does not exist"):
        DiffusionConfig.load(tmp_path / "missing.yaml")


# -- mel front ends -------------------------------------------------------------------------------
def test_numpy_mel_filterbank_equals_librosa():
    ours = slaney_mel_filterbank(44100, 2048, 128, 40.0, 16000.0)
    ref = librosa.filters.mel(sr=44100, n_fft=2048, n_mels=128, fmin=40.0, fmax=16000.0)
    assert np.max(np.abs(ours - ref)) < 1e-8


@pytest.mark.parametrize("keyshift", [0.0, 3.0, -4.5])
def test_runtime_mel_matches_torch_mel_with_key_shift(keyshift):
    spec = tiny_vocoder_config().mel
    audio = 0.3 * np.sin(2 * np.pi * 220 * np.arange(40 * HOP) / SR).astype(np.float32)
    audio += 0.01 * np.random.default_rng(0).standard_normal(audio.shape).astype(np.float32)
    ours = log_mel(audio, spec, keyshift=keyshift)
    ref = VocoderMel(spec)(torch.from_numpy(audio)[None], keyshift=keyshift).numpy()
    assert ours.shape == ref.shape == (1, MELS, 40)
    assert np.max(np.abs(ours - ref)) < 2e-4


def test_mel_of_a_short_signal_pads_with_zeros():
    spec = tiny_vocoder_config().mel
    ours = log_mel(np.full(100, 0.1, np.float32), spec)
    ref = VocoderMel(spec)(torch.full((1, 100), 0.1)).numpy()
    assert ours.shape == ref.shape and np.max(np.abs(ours - ref)) < 2e-4


# -- vocoder ----------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning")
def test_vocoder_loads_weight_normed_community_checkpoint(tmp_path):
    vocoder = tiny_vocoder(seed=3)
    # Write it the way the community file is: weight-normed keys (weight_g / weight_v) under "generator".
    normed = tiny_vocoder(seed=3).generator
    for name, module in normed.named_modules():  # the reference's weight-normed layers (not noise_convs)
        if isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)) and not name.startswith("noise_convs"):
            torch.nn.utils.weight_norm(module)
    state = normed.state_dict()
    assert any(k.endswith("weight_g") for k in state)
    folder = tmp_path / "nsf_hifigan"
    folder.mkdir()
    torch.save({"generator": state}, folder / "model")
    (folder / "config.json").write_text(json.dumps({**tiny_vocoder_config().to_dict(), "num_gpus": 0, "seed": 1234}))
    loaded = load_vocoder(folder / "model")
    mel, f0 = torch.randn(1, MELS, 20) - 5, torch.full((1, 20), 200.0)
    with torch.no_grad():
        assert torch.max(torch.abs(loaded(mel, f0) - vocoder(mel, f0))) < 1e-5
    # and what save_vocoder writes has exactly the reference's keys and loads back
    saved = tmp_path / "saved"
    save_vocoder(loaded, saved)
    assert set(torch.load(saved / "model", weights_only=True)["generator"]) == set(state)
    with torch.no_grad():
        assert torch.max(torch.abs(load_vocoder(saved / "model")(mel, f0) - vocoder(mel, f0))) < 1e-5
    (folder / "config.json").write_text(json.dumps({**tiny_vocoder_config().to_dict(), "num_mels": 40}))
    with pytest.raises(VocoderLoadError, match="does not match"):
        load_vocoder(folder / "model")
    with pytest.raises(VocoderLoadError, match="put its 'model' and 'config.json'"):
        load_vocoder(tmp_path / "absent" / "model")


def test_vocoder_source_follows_f0_and_output_has_right_length():
    vocoder = tiny_vocoder(seed=2)
    frames = 80
    for hz in (110.0, 220.0, 330.0, 440.0):
        f0 = torch.full((1, frames), hz)
        phase, _ = frame_start_phases(f0.numpy(), HOP, source_sr=SR)
        with torch.no_grad():
            source = vocoder.generator.m_source(
                f0, HOP, torch.from_numpy(phase.astype(np.float32)), torch.zeros(1, frames * HOP, 9)
            )[0, 0].numpy()
            audio = vocoder(torch.randn(1, MELS, frames) - 5, f0)
        assert audio.shape == (1, 1, frames * HOP)
        assert abs(cents(acf_pitch(source, SR), hz)) < 1.0


# -- samplers -----------------------------------------------------------------------------------------
def oracle(x0: np.ndarray, alpha_bar):
    """The exact noise prediction for a known clean x0: eps = (x - sqrt(a) x0) / sqrt(1 - a)."""

    def denoise(x, t):
        a = alpha_bar(t)
        return (x - np.sqrt(a) * x0) / np.sqrt(1.0 - a)

    return denoise


@pytest.mark.parametrize("method", ["ddim", "pndm", "dpm-solver", "dpm-solver++", "unipc"])
def test_samplers_land_on_the_clean_mel_with_an_exact_denoiser(method):
    """With eps = (x - sqrt(a) x0) / sqrt(1 - a) every sampler must follow the exact trajectory
    x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps and end at step 0: sqrt(a_0) x0 + sqrt(1 - a_0) eps."""
    schedule, k_step = NoiseSchedule(1000), 300
    rng = np.random.default_rng(0)
    x0 = np.clip(rng.standard_normal((1, 1, 8, 12)), -1, 1)
    if method in ("ddim", "pndm"):
        alpha_bar = lambda t: schedule.alphas_cumprod[int(t)]  # noqa: E731
        first_t = float(sampler_steps(k_step, 10)[0])
    else:
        vp = DiscreteVPSchedule(schedule, k_step)
        alpha_bar = lambda t: np.exp(2 * vp.log_alpha(t / k_step + 1 / k_step))  # noqa: E731
        first_t = float(k_step - 1)
    denoise = oracle(x0, alpha_bar)
    x = schedule.q_sample(x0, k_step - 1, rng.standard_normal(x0.shape))
    eps = denoise(x, first_t)
    a0 = schedule.alphas_cumprod[0]
    expected = np.sqrt(a0) * x0 + np.sqrt(1 - a0) * eps
    out = sample(denoise, x, schedule, k_step, method, speedup=10)
    assert np.max(np.abs(out - expected)) < 1e-9
    assert np.max(np.abs(out - x0)) < 0.05  # and that is the clean mel up to the last step's noise


def test_ddim_and_plms_match_so_vits_formulas_on_float32_buffers():
    """The shared samplers against a direct transcription of so-vits-svc's p_sample_ddim / p_sample_plms."""
    config = tiny_config()
    model = tiny_unit2mel(config)
    decoder = model.decoder
    cond = torch.randn(1, 16, 9)
    x_init = torch.randn(1, 1, MELS, 9)
    ac = decoder.alphas_cumprod

    def eps(x, t):
        return decoder.denoise_fn(x, torch.tensor([float(t)]), cond)

    def ddim_ref(x, k, s):
        for t in reversed(range(0, k, s)):
            a_t, a_prev = ac[t], ac[max(t - s, 0)]
            x = a_prev.sqrt() * (x / a_t.sqrt() + (((1 - a_prev) / a_prev).sqrt() - ((1 - a_t) / a_t).sqrt()) * eps(x, t))
        return x

    def plms_ref(x, k, s):
        def move(x, e, t):
            a_t, a_prev = ac[t], ac[max(t - s, 0)]
            d = (a_prev - a_t) * ((1 / (a_t.sqrt() * (a_t.sqrt() + a_prev.sqrt()))) * x
                                  - 1 / (a_t.sqrt() * (((1 - a_prev) * a_t).sqrt() + ((1 - a_t) * a_prev).sqrt())) * e)
            return x + d

        hist = []
        for t in reversed(range(0, k, s)):
            e = eps(x, t)
            if not hist:
                e_prime = (e + eps(move(x, e, t), max(t - s, 0))) / 2
            elif len(hist) == 1:
                e_prime = (3 * e - hist[-1]) / 2
            elif len(hist) == 2:
                e_prime = (23 * e - 16 * hist[-1] + 5 * hist[-2]) / 12
            else:
                e_prime = (55 * e - 59 * hist[-1] + 37 * hist[-2] - 9 * hist[-3]) / 24
            x = move(x, e_prime, t)
            hist.append(e)
        return x

    with torch.no_grad():
        for method, ref in (("ddim", ddim_ref), ("pndm", plms_ref)):
            ours = sample(eps, x_init, decoder.schedule, 67, method, 10)
            assert torch.max(torch.abs(ours - ref(x_init, 67, 10))) < 2e-5, method
    assert sampler_steps(67, 10) == [60, 50, 40, 30, 20, 10, 0]


def test_shallow_k_step_beyond_training_is_refused():
    config = tiny_config(k_step_max=50)
    model = tiny_unit2mel(config)
    units, f0, vol = torch.randn(1, 5, UNITS), torch.full((1, 5, 1), 200.0), torch.rand(1, 5, 1)
    with pytest.raises(ValueError, match="k_step must be in"):
        model.infer(units, f0, vol, torch.tensor([[0]]), gt_mel=torch.randn(1, 5, MELS), k_step=80, method="ddim")
    with pytest.raises(ValueError, match="shallow diffusion only"):
        model.infer(units, f0, vol, torch.tensor([[0]]), gt_mel=None, method="ddim")
    with pytest.raises(ValueError, match="at least 2 steps"):
        model.infer(units, f0, vol, torch.tensor([[0]]), gt_mel=torch.randn(1, 5, MELS), k_step=15, method="dpm-solver++")


def test_unipc_matches_a_transcription_of_the_reference_loop():
    """UniPC-bh2 (data prediction, order 2, lower-order final, no corrector on the last step)
    against a step-by-step transcription of so-vits-svc's ``uni_pc.UniPC.sample`` in torch float64."""
    schedule, k_step, speedup = NoiseSchedule(1000), 200, 20
    vp = DiscreteVPSchedule(schedule, k_step)
    weights = torch.from_numpy(np.random.default_rng(1).standard_normal((6, 6)) * 0.4)

    def denoise(x, tau):  # any smooth nonlinear noise predictor (torch for the transcription)
        return torch.tanh(torch.einsum("ij,...j->...i", weights, x) * (1.0 + tau / 300.0))

    def denoise_numpy(x, tau):  # the same, for the shared sampler run on numpy arrays
        return np.tanh(np.einsum("ij,...j->...i", weights.numpy(), x) * (1.0 + tau / 300.0))

    lam, alpha, sigma = vp.lam, vp.alpha, vp.sigma

    def model_fn(x, t):  # data prediction
        return (x - sigma(t) * denoise(x, vp.model_time(t))) / alpha(t)

    def uni_pc_update(x, model_prev_list, t_prev_list, t, order, use_corrector):
        t_prev_0, model_prev_0 = t_prev_list[-1], model_prev_list[-1]
        h = lam(t) - lam(t_prev_0)
        rks, d1s = [], []
        for i in range(1, order):
            rk = (lam(t_prev_list[-(i + 1)]) - lam(t_prev_0)) / h
            rks.append(rk)
            d1s.append((model_prev_list[-(i + 1)] - model_prev_0) / rk)
        rks = torch.tensor(rks + [1.0], dtype=torch.float64)
        hh = torch.tensor(-h, dtype=torch.float64)
        h_phi_1 = torch.expm1(hh)
        h_phi_k = h_phi_1 / hh - 1
        factorial_i, big_r, b = 1, [], []
        b_h = torch.expm1(hh)
        for i in range(1, order + 1):
            big_r.append(torch.pow(rks, i - 1))
            b.append(h_phi_k * factorial_i / b_h)
            factorial_i *= i + 1
            h_phi_k = h_phi_k / hh - 1 / factorial_i
        big_r, b = torch.stack(big_r), torch.stack(b)
        x_t_ = sigma(t) / sigma(t_prev_0) * x - alpha(t) * h_phi_1 * model_prev_0
        pred_res = 0.5 * d1s[0] if d1s else 0
        x_t = x_t_ - alpha(t) * b_h * pred_res
        model_t = None
        if use_corrector:
            rhos_c = torch.tensor([0.5], dtype=torch.float64) if order == 1 else torch.linalg.solve(big_r, b)
            model_t = model_fn(x_t, t)
            corr_res = rhos_c[0] * d1s[0] if d1s else 0
            x_t = x_t_ - alpha(t) * b_h * (corr_res + rhos_c[-1] * (model_t - model_prev_0))
        return x_t, model_t

    x = torch.from_numpy(np.random.default_rng(2).standard_normal((1, 1, 3, 6)))
    steps, order = k_step // speedup, 2
    timesteps = torch.linspace(1.0, 1.0 / k_step, steps + 1, dtype=torch.float64).tolist()
    t_prev_list, model_prev_list = [timesteps[0]], [model_fn(x, timesteps[0])]
    ref = x
    for step in range(1, order):
        ref, model_x = uni_pc_update(ref, model_prev_list, t_prev_list, timesteps[step], step, True)
        t_prev_list.append(timesteps[step])
        model_prev_list.append(model_x)
    for step in range(order, steps + 1):
        step_order = min(order, steps + 1 - step)
        ref, model_x = uni_pc_update(ref, model_prev_list, t_prev_list, timesteps[step], step_order, step != steps)
        t_prev_list = [t_prev_list[-1], timesteps[step]]
        if step < steps:
            model_prev_list = [model_prev_list[-1], model_x if model_x is not None else model_fn(ref, timesteps[step])]
    ours = sample(denoise_numpy, x.numpy(), schedule, k_step, "unipc", speedup)
    assert np.max(np.abs(ours - ref.numpy())) < 1e-9


def test_state_dict_keys_are_so_vits_svc_s():
    """Key names as so-vits-svc 4.1's diffusion/unit2mel.py + wavenet.py and vdecoder/nsf_hifigan build them."""
    model = tiny_unit2mel(tiny_config())  # 2 layers, 2 speakers, pitch augmentation
    buffers = ["betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
               "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
               "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
               "spec_min", "spec_max"]
    wavenet = ["input_projection", "mlp.0", "mlp.2", "skip_projection", "output_projection"]
    for i in range(2):
        wavenet += [f"residual_layers.{i}.{n}" for n in
                    ("dilated_conv", "diffusion_projection", "conditioner_projection", "output_projection")]
    expected = {"aug_shift_embed.weight", "spk_embed.weight"}
    expected |= {f"{n}.{p}" for n in ("unit_embed", "f0_embed", "volume_embed") for p in ("weight", "bias")}
    expected |= {f"decoder.{b}" for b in buffers}
    expected |= {f"decoder.denoise_fn.{n}.{p}" for n in wavenet for p in ("weight", "bias")}
    assert set(model.state_dict()) == expected

    from svc_train.diffusion.nsf_hifigan import unfold_weight_norm

    vocoder_keys = set(unfold_weight_norm(tiny_vocoder().generator.state_dict()))
    normed = ["conv_pre", "conv_post"] + [f"ups.{i}" for i in range(3)]
    for j in range(3 * 2):  # 3 upsamples x 2 kernel sizes, ResBlock1: convs1/convs2 x 3
        normed += [f"resblocks.{j}.convs{c}.{k}" for c in (1, 2) for k in range(3)]
    expected = {"m_source.l_linear.weight", "m_source.l_linear.bias"}
    expected |= {f"noise_convs.{i}.{p}" for i in range(3) for p in ("weight", "bias")}
    expected |= {f"{n}.{p}" for n in normed for p in ("weight_g", "weight_v", "bias")}
    assert vocoder_keys == expected
