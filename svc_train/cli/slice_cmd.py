"""`svc-train slice IN_DIR OUT_DIR`: cut long recordings into training clips at silences."""

from __future__ import annotations

from pathlib import Path

import typer

from svc_runtime.cli.base import ExitCode, fail, say, warn
from svc_runtime.cli.dataclass_options import Flag, with_options
from svc_train.data.slice import ClipSettings

# Flag names and help of ClipSettings' fields; defaults and checks come from the dataclass.
SLICE_FLAGS: dict[str, Flag] = {
    "threshold_db": Flag(("--threshold-db",), "RMS below this (dBFS) counts as silence."),
    "min_length_s": Flag(("--min-length",), "Shortest clip in seconds (shorter pieces are joined to a neighbour)."),
    "max_length_s": Flag(("--max-length",), "Longest clip in seconds (longer ones are cut at their quietest pause)."),
    "min_interval_ms": Flag(("--min-interval",), "Shortest silence (ms) the slicer cuts at."),
    "hop_ms": Flag(("--hop",), "Analysis hop (ms)."),
    "max_silence_kept_ms": Flag(("--max-silence-kept",), "Silence (ms) kept at each side of a cut."),
}


@with_options(ClipSettings, SLICE_FLAGS, parameter="settings")
def slice_command(
    settings: ClipSettings,
    in_dir: Path = typer.Argument(..., help="Folder of long recordings (sub-folders, e.g. one per speaker, are kept).",
                                  show_default=False),
    out_dir: Path = typer.Argument(..., help="Where the clips go, as <same sub-folder>/<name>_<n>.wav.",
                                   show_default=False),
) -> None:
    """Cut every recording under IN_DIR into clips between --min-length and --max-length seconds."""
    from svc_runtime.audio import AudioInputError, decode_audio, write_audio_atomic
    from svc_train.data.resample import AUDIO_SUFFIXES
    from svc_train.data.slice import plan_clips

    try:
        settings.slicer()
    except ValueError as e:
        fail(str(e))
    if not in_dir.is_dir():
        fail(f"{in_dir}: input folder does not exist")
    sources = sorted(p for p in in_dir.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not sources:
        fail(f"{in_dir}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    n_clips = 0
    failures = 0
    for source in sources:
        try:
            audio = decode_audio(source, min_duration_s=0.0, peak_limit=float("inf"))
        except AudioInputError as e:
            warn(f"{source}: {e.reason}", label="skipped")
            failures += 1
            continue
        plan = plan_clips(audio.samples, audio.sample_rate, settings)
        relative = source.relative_to(in_dir)
        for k, (start, end) in enumerate(plan.clips):
            target = out_dir / relative.parent / f"{relative.stem}_{k:04d}.wav"
            write_audio_atomic(target, audio.samples[start:end], audio.sample_rate, fmt="wav", subtype="PCM_16")
        n_clips += len(plan.clips)
        for start, end in plan.too_long:
            warn(
                f"{source} {start / audio.sample_rate:.2f}-{end / audio.sample_rate:.2f} s: "
                f"{(end - start) / audio.sample_rate:.1f} s without a pause below {settings.threshold_db} dBFS; "
                "written as is (lower --threshold-db or cut it by hand)", label="too long"
            )
        for start, end in plan.too_short:
            warn(
                f"{source} {start / audio.sample_rate:.2f}-{end / audio.sample_rate:.2f} s: "
                f"{(end - start) / audio.sample_rate:.1f} s, could not be joined within --max-length", label="short"
            )
    say(f"{n_clips} clips from {len(sources) - failures} recordings written to {out_dir}")
    if failures == len(sources):
        raise typer.Exit(int(ExitCode.FAILED))
