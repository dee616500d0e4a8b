"""`svc-train diffusion -c diffusion.yaml`: train the shallow-diffusion model (Unit2Mel)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from svc_runtime.cli.base import fail, say


def diffusion_command(
    config_path: Path = typer.Option(..., "--config", "-c", help="The diffusion.yaml (so-vits-svc 4.1 diffusion "
                                     "template).", show_default=False),
    max_steps: Optional[int] = typer.Option(
        None, min=1, help="Train until the model has this many steps in total (a resumed run counts the steps "
        "already done; default: train.epochs)."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from the newest model_*.pt in env.expdir."),
    device: Optional[str] = typer.Option(None, help="Override the config's device (cpu, cuda, cuda:1)."),
    skip_mels: bool = typer.Option(False, "--skip-mels", help="Do not compute missing mel/volume/augmentation caches first."),
) -> None:
    """Cache vocoder mels for the file lists (once), then train; checkpoints go to env.expdir.

    Several GPUs or machines: torchrun --nproc_per_node=N $(which svc-train) diffusion -c diffusion.yaml
    """
    from svc_runtime.cli.base import console
    from svc_train.diffusion.config import DiffusionConfig, DiffusionConfigError
    from svc_train.diffusion.data import DiffusionDataError, prepare_mels
    from svc_train.diffusion.nsf_hifigan import VocoderConfig, VocoderLoadError
    from svc_train.diffusion.trainer import DiffusionCheckpointError, latest_checkpoint, train
    from svc_train.diffusion.vocoder_mel import VocoderMel

    try:
        config = DiffusionConfig.load(config_path)
        if device:
            config.device = device
        vocoder_config_path = Path(config.vocoder.ckpt).parent / "config.json"
        if not vocoder_config_path.is_file():
            raise VocoderLoadError(
                f"vocoder config {vocoder_config_path} not found (from vocoder.ckpt = {config.vocoder.ckpt}); put the "
                "nsf_hifigan folder (model + config.json) there"
            )
        vocoder = VocoderConfig.from_dict(json.loads(vocoder_config_path.read_text()), str(vocoder_config_path))
        done = 0  # steps the newest checkpoint holds: --max-steps counts them (as `svc-train train` does)
        previous = latest_checkpoint(Path(config.env.expdir)) if resume and Path(config.env.expdir).is_dir() else None
        if previous is not None:
            done = int(previous.stem.split("_")[-1])
        if max_steps is not None and done >= max_steps:
            say(f"nothing to train: {previous} already has {done} steps (--max-steps {max_steps})")
            return
        if not skip_mels:
            mel = VocoderMel(vocoder.mel)
            for filelist in (config.data.training_files, config.data.validation_files):
                written = prepare_mels(filelist, config, mel, seed=config.train.seed)
                say(f"mel caches: {written} new for {filelist}")
        steps = None if max_steps is None else max_steps - done
        report = train(config, vocoder.num_mels, max_steps=steps, resume=resume, log=console().print)
    except (DiffusionConfigError, DiffusionDataError, VocoderLoadError, DiffusionCheckpointError,
            json.JSONDecodeError) as exc:
        fail(str(exc))
    say(f"done: {report.steps} steps, checkpoint {report.checkpoint}")
