"""`svc-train resample IN_DIR OUT_DIR`: trim, normalise, loudness-match and resample speaker folders."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from svc_train.cli._errors import exit_with_error
from svc_train.cli.app import app
from svc_train.data.parallel import run_jobs
from svc_train.data.resample import (
    FileResult,
    ResampleSettings,
    default_workers,
    list_speaker_files,
    prepare_file,
    target_path,
)


def _run(job: tuple[Path, Path, ResampleSettings]) -> FileResult:
    return prepare_file(*job)


@app.command("resample")
def resample_command(
    in_dir: Path = typer.Argument(..., help="One sub-folder per speaker with wav/flac/ogg/mp3 files."),
    out_dir: Path = typer.Argument(..., help="Output dataset folder: OUT_DIR/<speaker>/<name>.wav (16-bit)."),
    sampling_rate: int = typer.Option(44100, "--sr", help="Model sample rate in Hz."),
    skip_loudnorm: bool = typer.Option(False, "--skip-loudnorm", help="Keep levels (only peak-limit)."),
    target_lufs: float = typer.Option(-23.0, help="Integrated loudness target (ITU-R BS.1770-4)."),
    workers: int = typer.Option(0, "--workers", "-j", help="Worker processes (0: one per CPU, at most 8)."),
) -> None:
    """Prepare a dataset: trim silence (top_db 40), peak-normalise, loudness-match, resample, write 16-bit wav."""
    console = Console(stderr=True)
    try:
        settings = ResampleSettings(sampling_rate=sampling_rate, skip_loudnorm=skip_loudnorm, target_lufs=target_lufs)
        speakers, problems = list_speaker_files(in_dir)
    except (ValueError, FileNotFoundError) as e:
        exit_with_error(str(e))
    for problem in problems:
        console.print(f"[yellow]note[/] {problem}")
    jobs: list[tuple[Path, Path, ResampleSettings]] = []
    seen: dict[Path, Path] = {}
    skipped: list[FileResult] = []
    for speaker, files in speakers.items():
        for source in files:
            target = target_path(out_dir, speaker, source, in_dir / speaker)
            if target in seen:
                skipped.append(FileResult(str(source), error=f"same output name as {seen[target]}; rename one"))
                continue
            seen[target] = source
            jobs.append((source, target, settings))
    if not jobs:
        console.print(f"[red]{in_dir}: nothing to resample")
        raise typer.Exit(1)
    n_workers = workers or default_workers()
    done = 0
    for result in run_jobs(_run, jobs, n_workers, "resample", console):
        if result.error:
            skipped.append(result)
        else:
            done += 1
            for note in result.notes:
                console.print(f"[dim]{result.source}: {note}")
    for result in skipped:
        console.print(f"[yellow]skipped[/] {result.source}: {result.error}", soft_wrap=True)
    console.print(f"{done} of {len(jobs)} files written to {out_dir} at {sampling_rate} Hz")
    if done == 0:
        raise typer.Exit(1)
