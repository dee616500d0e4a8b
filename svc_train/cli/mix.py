"""`svc-train mix A.pth B.pth ... --weights 0.7 0.3 -o MIX.pth`: weighted mix of generator checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import typer
from rich.console import Console

from svc_train.checkpoint import CheckpointError
from svc_train.cli._errors import exit_with_error
from svc_train.cli.app import app
from svc_train.index import mix_checkpoints


@app.command("mix")
def mix_command(
    checkpoints: list[Path] = typer.Argument(..., help="Two or more G_*.pth trained with the same config."),
    weights: list[float] = typer.Option(..., "--weight", "-w", help="One weight per checkpoint (repeat the option)."),
    output: Path = typer.Option(..., "--output", "-o", help="Mixed checkpoint to write."),
    mode: str = typer.Option("linear", help="linear (weights normalised to sum 1) or softmax (so-vits-svc mode 0)."),
) -> None:
    """Mix checkpoints key by key: sum of weight_i * tensor_i (so-vits-svc's model fusion)."""
    try:
        mixed = mix_checkpoints(checkpoints, weights, mode)  # type: ignore[arg-type]
    except (CheckpointError, ValueError) as e:
        exit_with_error(str(e))
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.part")
    torch.save(mixed, tmp)
    os.replace(tmp, output)
    Console(stderr=True).print(f"mixed {len(checkpoints)} checkpoints -> {output}")
