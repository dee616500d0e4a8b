"""`svc-train slice IN_DIR OUT_DIR`: cut long recordings into training clips at silences."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from svc_runtime.audio import AudioInputError, decode_audio, write_audio_atomic
from svc_train.cli._errors import exit_with_error
from svc_train.cli.app import app
from svc_train.data.resample import AUDIO_SUFFIXES
from svc_train.data.slice import ClipSettings, plan_clips


@app.command("slice")
def slice_command(
    in_dir: Path = typer.Argument(..., help="Folder of long recordings (sub-folders, e.g. one per speaker, are kept)."),
    out_dir: Path = typer.Argument(..., help="Where the clips go, as <same sub-folder>/<name>_<n>.wav."),
    threshold_db: float = typer.Option(-40.0, help="RMS below this (dBFS) counts as silence."),
    min_length: float = typer.Option(2.0, help="Shortest clip in seconds (shorter pieces are joined to a neighbour)."),
    max_length: float = typer.Option(15.0, help="Longest clip in seconds (longer ones are cut at their quietest pause)."),
    min_interval: int = typer.Option(300, help="Shortest silence (ms) the slicer cuts at."),
    max_silence_kept: int = typer.Option(500, help="Silence (ms) kept at each side of a cut."),
    hop: int = typer.Option(10, help="Analysis hop (ms)."),
) -> None:
    """Cut every recording under IN_DIR into clips between --min-length and --max-length seconds."""
    console = Console(stderr=True)
    try:
        settings = ClipSettings(
            threshold_db=threshold_db,
            min_length_s=min_length,
            max_length_s=max_length,
            min_interval_ms=min_interval,
            hop_ms=hop,
            max_silence_kept_ms=max_silence_kept,
        )
        settings.slicer()
    except ValueError as e:
        exit_with_error(str(e))
    if not in_dir.is_dir():
        exit_with_error(f"{in_dir}: input folder does not exist")
    sources = sorted(p for p in in_dir.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not sources:
        console.print(f"[red]{in_dir}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
        raise typer.Exit(1)
    n_clips = 0
    failures = 0
    for source in sources:
        try:
            audio = decode_audio(source, min_duration_s=0.0, peak_limit=float("inf"))
        except AudioInputError as e:
            console.print(f"[yellow]skipped[/] {source}: {e.reason}")
            failures += 1
            continue
        plan = plan_clips(audio.samples, audio.sample_rate, settings)
        relative = source.relative_to(in_dir)
        for k, (start, end) in enumerate(plan.clips):
            target = out_dir / relative.parent / f"{relative.stem}_{k:04d}.wav"
            write_audio_atomic(target, audio.samples[start:end], audio.sample_rate, fmt="wav", subtype="PCM_16")
        n_clips += len(plan.clips)
        for start, end in plan.too_long:
            console.print(
                f"[yellow]too long[/] {source} {start / audio.sample_rate:.2f}-{end / audio.sample_rate:.2f} s: "
                f"{(end - start) / audio.sample_rate:.1f} s without a pause below {threshold_db} dBFS; "
                "written as is (lower --threshold-db or cut it by hand)"
            )
        for start, end in plan.too_short:
            console.print(
                f"[yellow]short[/] {source} {start / audio.sample_rate:.2f}-{end / audio.sample_rate:.2f} s: "
                f"{(end - start) / audio.sample_rate:.1f} s, could not be joined within --max-length"
            )
    console.print(f"{n_clips} clips from {len(sources) - failures} recordings written to {out_dir}")
    if failures == len(sources):
        raise typer.Exit(1)
