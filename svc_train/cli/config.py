"""`svc-train config DATASET_DIR`: file lists and a so-vits-svc 4.1 config.json for a prepared dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from svc_runtime.cli.base import fail, say, warn
from svc_train.data.config_builder import DEFAULT_SAMPLING_RATE, DEFAULT_SPEECH_ENCODER, MODEL_SIZES


def encoder_spec(name: str):
    """The registry entry (`svc_train.encoders.ENCODER_SPECS`) of ``name``; an unknown name is a usage error."""
    from svc_train.encoders import ENCODER_SPECS

    if name not in ENCODER_SPECS:
        fail(f"unknown speech encoder {name!r}; choose one of {', '.join(ENCODER_SPECS)}")
    return ENCODER_SPECS[name]


def probe_units_dim(speech_encoder: str, checkpoint: Path) -> int:
    """Unit size of a speech-encoder checkpoint: run it on one second of silence at 16 kHz."""
    import torch

    from svc_runtime.vocabulary import ENCODER_SAMPLE_RATE
    from svc_train import load_content_encoder

    encoder = load_content_encoder(speech_encoder, checkpoint)
    with torch.no_grad():
        units = encoder(torch.zeros(1, ENCODER_SAMPLE_RATE))  # one second
    return int(units.shape[1])


def config_command(
    dataset_dir: Path = typer.Argument(..., help="Prepared dataset: one sub-folder of wavs per speaker.",
                                       show_default=False),
    config_out: Path = typer.Option(Path("configs/config.json"), "--output", "-o", help="Where config.json goes."),
    filelists: Path = typer.Option(Path("filelists"), help="Folder for train.txt and val.txt."),
    speech_encoder: str = typer.Option(
        DEFAULT_SPEECH_ENCODER, help="Speech encoder, a name of svc_train.encoders.ENCODER_SPECS (a wrong name is "
        "refused with the list)."),
    encoder_checkpoint: Optional[Path] = typer.Option(
        None, "--encoder-checkpoint", "-e", help="Encoder checkpoint: ssl_dim is read from it (recommended); "
        "without it, the encoder's usual size."),
    size: str = typer.Option(MODEL_SIZES[0], help=f"Model template: {', '.join(MODEL_SIZES)} (cpu: the tiny model "
                             "narrowed, with batch and log settings for CPU training; see README)."),
    sampling_rate: int = typer.Option(DEFAULT_SAMPLING_RATE, "--sr", help="Sample rate of the dataset in Hz (svc-train resample --sr)."),
    vol_aug: bool = typer.Option(False, "--vol-aug", help="Volume embedding and volume augmentation."),
    val_per_speaker: int = typer.Option(2, min=0, help="Clips per speaker held out for validation."),
    overrides: list[str] = typer.Option([], "--set", help="SECTION.KEY=VALUE override, e.g. train.batch_size=4."),
) -> None:
    """Write filelists/train.txt, filelists/val.txt and config.json (speakers from the folders)."""
    from svc_train.data.config_builder import build_config, split_dataset, write_config, write_filelist

    spec = encoder_spec(speech_encoder)
    if config_out.is_dir():
        fail(f"{config_out}: is a folder; -o takes the config.json to write")
    try:
        split = split_dataset(dataset_dir, val_per_speaker)
        units_dim = probe_units_dim(speech_encoder, encoder_checkpoint) if encoder_checkpoint else spec.dim
        train_list, val_list = filelists / "train.txt", filelists / "val.txt"
        config = build_config(
            split, train_list, val_list, units_dim, size=size,  # type: ignore[arg-type]
            speech_encoder=speech_encoder, sampling_rate=sampling_rate, vol_aug=vol_aug, overrides=overrides,
        )
    except (ValueError, OSError) as e:
        fail(str(e))
    for note in split.skipped:
        warn(note, label="skipped")
    write_filelist(train_list, split.train)
    write_filelist(val_list, split.val)
    write_config(config_out, config)
    source = f"read from {encoder_checkpoint}" if encoder_checkpoint else f"{speech_encoder}'s usual size"
    say(
        f"{len(split.speakers)} speakers, {len(split.train)} training and {len(split.val)} validation clips; "
        f"ssl_dim {units_dim} ({source}); wrote {config_out}, {train_list}, {val_list}"
    )
