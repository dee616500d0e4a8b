"""`svc-train compress G.pth -o G_release.pth [--half]`: strip optimizer and enc_q, optionally float16."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from svc_runtime.cli.base import fail, say


def compress_command(
    checkpoint: Path = typer.Argument(..., help="Generator checkpoint G_*.pth.", show_default=False),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Default: <name>_release[_half].pth."),
    half: bool = typer.Option(False, "--half", help="Store float16 weights."),
) -> None:
    """A release copy for inference (so-vits-svc's compress_model.py): about a third of the size, or a sixth."""
    from svc_train.checkpoint import CheckpointError, compress

    if output is None:
        output = checkpoint.with_name(f"{checkpoint.stem}_release{'_half' if half else ''}{checkpoint.suffix}")
    if output.is_dir():
        fail(f"{output}: is a folder; -o takes the checkpoint file to write")
    try:
        compress(checkpoint, output, half=half)
    except CheckpointError as e:
        fail(str(e))
    before, after = checkpoint.stat().st_size, output.stat().st_size
    say(f"{checkpoint} ({before / 1e6:.1f} MB) -> {output} ({after / 1e6:.1f} MB)")
