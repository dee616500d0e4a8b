"""`svc-train compress G.pth -o G_release.pth [--half]`: strip optimizer and enc_q, optionally float16."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from svc_train.checkpoint import CheckpointError, compress
from svc_train.cli._errors import exit_with_error
from svc_train.cli.app import app


@app.command("compress")
def compress_command(
    checkpoint: Path = typer.Argument(..., help="Generator checkpoint G_*.pth."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Default: <name>_release[_half].pth."),
    half: bool = typer.Option(False, "--half", help="Store float16 weights."),
) -> None:
    """A release copy for inference (so-vits-svc's compress_model.py): about a third of the size, or a sixth."""
    if output is None:
        output = checkpoint.with_name(f"{checkpoint.stem}_release{'_half' if half else ''}{checkpoint.suffix}")
    try:
        compress(checkpoint, output, half=half)
    except CheckpointError as e:
        exit_with_error(str(e))
    before, after = checkpoint.stat().st_size, output.stat().st_size
    Console(stderr=True).print(f"{checkpoint} ({before / 1e6:.1f} MB) -> {output} ({after / 1e6:.1f} MB)")
