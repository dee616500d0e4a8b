"""`svc-train features -c config.json`: units, F0 + uv, volume and spectrogram of every listed clip."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from svc_runtime.pitch.extract import PITCH_METHODS
from svc_train.cli._errors import exit_with_error
from svc_train.cli.app import app
from svc_runtime.vocabulary import F0_MAX_HZ, F0_MIN_HZ
from svc_train.config import SvcConfig
from svc_train.data.feature_jobs import clips_of, drop_from_filelists, init_worker, process_clip
from svc_train.data.features import FEATURE_SUFFIX, FeatureSettings
from svc_train.data.parallel import run_jobs


@app.command("features")
def features_command(
    config: Path = typer.Option(..., "--config", "-c", help="config.json written by `svc-train config`."),
    encoder_checkpoint: Path = typer.Option(
        ..., "--encoder-checkpoint", "-e", help="Speech-encoder checkpoint for the config's speech_encoder."
    ),
    f0_method: str = typer.Option("rmvpe", "--f0-method", help=f"Pitch method: {', '.join(PITCH_METHODS)}."),
    f0_checkpoint: Path | None = typer.Option(None, help="Pitch network checkpoint (rmvpe.pt; fcpe: the wheel's)."),
    f0_threshold: float | None = typer.Option(None, help="Voicing threshold (default: the method's)."),
    f0_min: float = typer.Option(F0_MIN_HZ, help="Lowest F0 searched (Hz)."),
    f0_max: float = typer.Option(F0_MAX_HZ, help="Highest F0 searched (Hz)."),
    workers: int = typer.Option(1, "--workers", "-j", help="Worker processes (each loads the networks)."),
    threads: int = typer.Option(0, help="Torch threads per worker (0: torch's default)."),
) -> None:
    """Compute and cache features next to each clip (CLIP.wav.features.npz); resumable; bad clips excluded."""
    console = Console(stderr=True)
    try:
        cfg = SvcConfig.load(config)
        settings = FeatureSettings.from_config(
            cfg,
            encoder_checkpoint,
            f0_method,
            f0_checkpoint=str(f0_checkpoint.resolve()) if f0_checkpoint else None,
            f0_threshold=f0_threshold,
            f0_min=f0_min,
            f0_max=f0_max,
        )
        settings.pitch_options()  # validates the method, range and threshold
        if not encoder_checkpoint.exists():
            raise FileNotFoundError(f"{encoder_checkpoint}: speech-encoder checkpoint not found")
        filelists = [Path(cfg.data.training_files), Path(cfg.data.validation_files)]
        clips = clips_of(filelists)
    except (OSError, ValueError) as e:
        exit_with_error(str(e) if str(config) in str(e) else f"{config}: {e}")
    if not clips:
        exit_with_error(f"{config}: the file lists are empty")
    counts = {"computed": 0, "cached": 0, "excluded": 0}
    excluded: dict[Path, str] = {}
    for outcome in run_jobs(
        process_clip, clips, workers, "features", console, initializer=init_worker, initargs=(settings, threads),
        start_method="spawn",
    ):
        counts[outcome.status] += 1
        if outcome.status == "excluded":
            excluded[outcome.wav] = outcome.reason or "unknown"
            console.print(f"[yellow]excluded[/] {outcome.wav}: {outcome.reason}", soft_wrap=True, highlight=False)
    removed = drop_from_filelists(filelists, excluded)
    for filelist, n in removed.items():
        if n:
            console.print(f"removed {n} clip(s) from {filelist} (reasons in {filelist.name}.excluded.tsv)")
    console.print(
        f"{counts['computed']} computed, {counts['cached']} already cached, {counts['excluded']} excluded "
        f"(cache: <clip>.wav{FEATURE_SUFFIX})"
    )
    if counts["computed"] + counts["cached"] == 0:
        raise typer.Exit(1)
