"""Tiny random diffusion models and vocoders for the diffusion tests (CPU, seconds)."""

from __future__ import annotations

import torch

from svc_train.diffusion.config import DiffusionConfig
from svc_train.diffusion.nsf_hifigan import NsfHifiGanVocoder, VocoderConfig
from svc_train.diffusion.unit2mel import Unit2Mel

SR, HOP, MELS, UNITS = 16000, 64, 32, 16


def tiny_vocoder_config() -> VocoderConfig:
    return VocoderConfig(
        sampling_rate=SR, num_mels=MELS, n_fft=256, win_size=256, hop_size=HOP, fmin=40.0, fmax=8000.0,
        upsample_rates=(4, 4, 4), upsample_kernel_sizes=(8, 8, 8), upsample_initial_channel=32,
        resblock_kernel_sizes=(3, 5), resblock_dilation_sizes=((1, 3, 5), (1, 3, 5)),
    )


def tiny_vocoder(seed: int = 0) -> NsfHifiGanVocoder:
    torch.manual_seed(seed)
    return NsfHifiGanVocoder(tiny_vocoder_config()).eval()


def tiny_config(k_step_max: int = 0, n_spk: int = 2, **train) -> DiffusionConfig:
    raw = {
        "data": {"sampling_rate": SR, "block_size": HOP, "duration": 0.5, "encoder_out_channels": UNITS,
                 "training_files": "train.txt", "validation_files": "val.txt"},
        "model": {"n_layers": 2, "n_chans": 16, "n_hidden": 16, "use_pitch_aug": True, "timesteps": 100,
                  "k_step_max": k_step_max, "n_spk": n_spk},
        "vocoder": {"type": "nsf-hifigan", "ckpt": "vocoder/model"},
        "infer": {"speedup": 10, "method": "dpm-solver++"},
        "env": {"expdir": "exp"},
        "train": {"batch_size": 4, "num_workers": 0, "interval_log": 1, "interval_val": 1000,
                  "interval_force_save": 1000, "lr": 0.002, "cache_fp16": False, **train},
        "spk": {"alto": 0, "tenor": 1} if n_spk == 2 else {"alto": 0},
    }
    return DiffusionConfig.from_dict(raw)


def tiny_unit2mel(config: DiffusionConfig, seed: int = 0, random_output: bool = True) -> Unit2Mel:
    """A random Unit2Mel; ``random_output`` replaces the zero-initialised last layer so eps != 0."""
    torch.manual_seed(seed)
    model = Unit2Mel.from_config(config, MELS).eval()
    if random_output:
        torch.nn.init.normal_(model.decoder.denoise_fn.output_projection.weight, std=0.2)
    return model


def write_tiny_dataset(root, config: DiffusionConfig, clips_per_speaker: int = 2, seconds: float = 1.0):
    """Harmonic tones with cached units and f0 as feature extraction leaves them: so-vits-svc's
    .soft.pt/.f0.npy for the first speaker, the .features.npz archive for the second.

    Returns (train_list, val_list) paths; mel/volume caches are left to ``prepare_mels``.
    """
    from pathlib import Path

    import numpy as np
    import soundfile

    root = Path(root)
    rng = np.random.default_rng(0)
    wavs = []
    for speaker, base in (("alto", 220.0), ("tenor", 150.0))[: max(config.model.n_spk, 1)]:
        for k in range(clips_per_speaker):
            n = int(seconds * SR)
            frames = n // HOP
            f0 = base * (1.0 + 0.05 * k) * (1.0 + 0.02 * np.sin(np.linspace(0, 6, frames)))
            inst = np.repeat(f0, HOP)
            phase = 2 * np.pi * np.cumsum(inst) / SR
            audio = sum(0.3 / h * np.sin(h * phase) for h in range(1, 5)) + 0.003 * rng.standard_normal(n)
            wav = root / speaker / f"{speaker}_{k}.wav"
            wav.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(str(wav), audio.astype(np.float32), SR)
            units = rng.standard_normal((UNITS, frames // 2 + 1)).astype(np.float32)
            if speaker == "alto":  # so-vits-svc's own cache files
                torch.save(torch.from_numpy(units)[None], str(wav) + ".soft.pt")
                np.save(str(wav) + ".f0.npy", np.stack([f0, np.ones_like(f0)]))
            else:  # svc-train features' archive
                np.savez(str(wav) + ".features.npz", units=units, f0=f0.astype(np.float32),
                         uv=np.ones(frames, np.float32), volume=np.zeros(frames, np.float32))
            wavs.append(wav)
    train = root / "train.txt"
    val = root / "val.txt"
    train.write_text("\n".join(str(w) for w in wavs) + "\n")
    val.write_text(str(wavs[0]) + "\n")
    return train, val


def ddp_worker(rank: int, config_path: str, port: int, out_dir: str) -> None:
    """One rank of a 2-process gloo job as torchrun would start it; saves its final weights to out_dir."""
    import os

    from svc_train.diffusion import trainer

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    report = trainer.train(DiffusionConfig.load(config_path), MELS, max_steps=3)
    flat = torch.cat([p.detach().flatten() for p in report.model.parameters()])
    torch.save({"params": flat, "steps": report.steps}, f"{out_dir}/rank{rank}.pt")
