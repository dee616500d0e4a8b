"""`svc-train resample IN_DIR OUT_DIR`: trim, normalise, loudness-match and resample speaker folders."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from svc_runtime.cli.base import ExitCode, fail, say, warn


def _run(job):
    from svc_train.data.resample import prepare_file

    return prepare_file(*job)


def resample_command(
    in_dir: Path = typer.Argument(..., help="One sub-folder per speaker with wav/flac/ogg/mp3 files.",
                                  show_default=False),
    out_dir: Path = typer.Argument(..., help="Output dataset folder: OUT_DIR/<speaker>/<name>.wav (16-bit).",
                                   show_default=False),
    sampling_rate: Optional[int] = typer.Option(None, "--sr", help="Model sample rate in Hz (default 44100, "
                                                "svc_train.data.resample.ResampleSettings)."),
    skip_loudnorm: bool = typer.Option(False, "--skip-loudnorm", help="Keep levels (only peak-limit)."),
    target_lufs: Optional[float] = typer.Option(None, help="Integrated loudness target, ITU-R BS.1770-4 "
                                                "(default: ResampleSettings')."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", min=0,
                                          help="Worker processes; 0 = in this process (default: one per CPU, at most 8)."),
) -> None:
    """Prepare a dataset: trim silence (top_db 40), peak-normalise, loudness-match, resample, write 16-bit wav."""
    from svc_train.data.parallel import run_jobs
    from svc_train.data.resample import (
        ResampleResult,
        ResampleSettings,
        default_workers,
        list_speaker_files,
        target_path,
    )

    given = {k: v for k, v in (("sampling_rate", sampling_rate), ("target_lufs", target_lufs)) if v is not None}
    try:
        settings = ResampleSettings(skip_loudnorm=skip_loudnorm, **given)
        speakers, problems = list_speaker_files(in_dir)
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))
    for problem in problems:
        warn(problem)
    jobs = []
    seen: dict[Path, Path] = {}
    skipped: list[ResampleResult] = []
    for speaker, files in speakers.items():
        for source in files:
            target = target_path(out_dir, speaker, source, in_dir / speaker)
            if target in seen:
                skipped.append(ResampleResult(str(source), error=f"same output name as {seen[target]}; rename one"))
                continue
            seen[target] = source
            jobs.append((source, target, settings))
    if not jobs:
        fail(f"{in_dir}: nothing to resample")
    done = 0
    for result in run_jobs(_run, jobs, default_workers() if workers is None else workers, "resample"):
        if result.error:
            skipped.append(result)
        else:
            done += 1
            for note in result.notes:
                say(f"{result.source}: {note}", style="dim")
    for result in skipped:
        warn(f"{result.source}: {result.error}", label="skipped")
    say(f"{done} of {len(jobs)} files written to {out_dir} at {settings.sampling_rate} Hz")
    if done == 0:
        raise typer.Exit(int(ExitCode.FAILED))
