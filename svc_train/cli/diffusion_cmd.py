"""`svc-train diffusion -c diffusion.yaml`: train the shallow-diffusion model (Unit2Mel)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from svc_train.cli._errors import exit_with_error
from svc_train.cli.app import app


@app.command("diffusion")
def diffusion_command(
    config_path: Path = typer.Option(..., "-c", "--config", help="The diffusion.yaml (so-vits-svc 4.1 diffusion template)."),
    max_steps: int = typer.Option(0, help="Stop after this many optimizer steps in this run (0: train.epochs)."),
    resume: bool = typer.Option(True, help="Continue from the newest model_*.pt in env.expdir."),
    device: str = typer.Option("", help="Override the config's device (cpu, cuda, cuda:1)."),
    skip_mels: bool = typer.Option(False, help="Do not compute missing mel/volume/augmentation caches first."),
) -> None:
    """Cache vocoder mels for the file lists (once), then train; checkpoints go to env.expdir.

    Several GPUs or machines: torchrun --nproc_per_node N $(which svc-train) diffusion -c diffusion.yaml
    """
    from svc_train.diffusion.config import DiffusionConfig, DiffusionConfigError  # noqa: PLC0415
    from svc_train.diffusion.data import DiffusionDataError, prepare_mels  # noqa: PLC0415
    from svc_train.diffusion.nsf_hifigan import VocoderConfig, VocoderLoadError  # noqa: PLC0415
    from svc_train.diffusion.trainer import DiffusionCheckpointError, train  # noqa: PLC0415
    from svc_train.diffusion.vocoder_mel import VocoderMel  # noqa: PLC0415

    console = Console(stderr=True)
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
        if not skip_mels:
            mel = VocoderMel(vocoder.mel)
            for filelist in (config.data.training_files, config.data.validation_files):
                written = prepare_mels(filelist, config, mel, seed=config.train.seed)
                console.print(f"mel caches: {written} new for {filelist}")
        report = train(config, vocoder.num_mels, max_steps=max_steps or None, resume=resume, log=console.print)
    except (DiffusionConfigError, DiffusionDataError, VocoderLoadError, DiffusionCheckpointError, json.JSONDecodeError) as exc:
        exit_with_error(str(exc))
    console.print(f"[green]done[/]: {report.steps} steps, checkpoint {report.checkpoint}")
