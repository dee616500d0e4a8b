"""`svc-train config DATASET_DIR`: file lists and a so-vits-svc 4.1 config.json for a prepared dataset."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from svc_train.cli._errors import exit_with_error
from svc_train.cli.app import app
from svc_train.data.config_builder import (
    ENCODER_DIMS,
    build_config,
    split_dataset,
    write_config,
    write_filelist,
)


def probe_units_dim(speech_encoder: str, checkpoint: Path) -> int:
    """Unit size of a speech-encoder checkpoint: run it on one second of silence."""
    import torch

    from svc_train import load_content_encoder

    encoder = load_content_encoder(speech_encoder, checkpoint)
    with torch.no_grad():
        units = encoder(torch.zeros(1, 16000))
    return int(units.shape[1])


@app.command("config")
def config_command(
    dataset_dir: Path = typer.Argument(..., help="Prepared dataset: one sub-folder of wavs per speaker."),
    config_out: Path = typer.Option(Path("configs/config.json"), "--config-out", "-o", help="Where config.json goes."),
    filelists: Path = typer.Option(Path("filelists"), help="Folder for train.txt and val.txt."),
    speech_encoder: str = typer.Option("vec768l12", help=f"Speech encoder: {', '.join(ENCODER_DIMS)}."),
    encoder_checkpoint: Path | None = typer.Option(
        None, help="Encoder checkpoint; when given, its unit size sets ssl_dim (else the encoder's usual size)."
    ),
    size: str = typer.Option("standard", help="Model size template: standard or tiny (so-vits-svc 4.1)."),
    sampling_rate: int = typer.Option(44100, "--sr", help="Sample rate of the dataset in Hz."),
    vol_aug: bool = typer.Option(False, "--vol-aug", help="Volume embedding and volume augmentation."),
    val_per_speaker: int = typer.Option(2, help="Clips per speaker held out for validation."),
    overrides: list[str] = typer.Option([], "--set", help="SECTION.KEY=VALUE override, e.g. train.batch_size=4."),
) -> None:
    """Write filelists/train.txt, filelists/val.txt and config.json (speakers from the folders)."""
    console = Console(stderr=True)
    try:
        split = split_dataset(dataset_dir, val_per_speaker)
        units_dim = probe_units_dim(speech_encoder, encoder_checkpoint) if encoder_checkpoint else None
        train_list, val_list = filelists / "train.txt", filelists / "val.txt"
        config = build_config(
            split,
            train_list,
            val_list,
            size=size,  # type: ignore[arg-type]
            speech_encoder=speech_encoder,
            units_dim=units_dim,
            sampling_rate=sampling_rate,
            vol_aug=vol_aug,
            overrides=overrides,
        )
    except (ValueError, FileNotFoundError) as e:
        exit_with_error(str(e))
    for note in split.skipped:
        console.print(f"[yellow]skipped[/] {note}")
    write_filelist(train_list, split.train)
    write_filelist(val_list, split.val)
    write_config(config_out, config)
    console.print(
        f"{len(split.speakers)} speakers, {len(split.train)} training and {len(split.val)} validation clips; "
        f"wrote {config_out}, {train_list}, {val_list}"
    )
