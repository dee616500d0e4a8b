"""`svc-train mix A.pth B.pth ... --weight 0.7 --weight 0.3 -o MIX.pth`: weighted mix of generator checkpoints."""

from __future__ import annotations

from pathlib import Path

import typer

from svc_runtime.cli.base import fail, say


def mix_command(
    checkpoints: list[Path] = typer.Argument(..., help="Two or more G_*.pth trained with the same config.",
                                             show_default=False),
    weights: list[float] = typer.Option(..., "--weight", "-w", help="One weight per checkpoint (repeat the option).",
                                        show_default=False),
    output: Path = typer.Option(..., "--output", "-o", help="Mixed checkpoint to write (folders created).",
                                show_default=False),
    mode: str = typer.Option("linear", help="linear (weights normalised to sum 1) or softmax (so-vits-svc mode 0)."),
) -> None:
    """Mix checkpoints key by key: sum of weight_i * tensor_i (so-vits-svc's model fusion)."""
    if output.is_dir():
        fail(f"{output}: is a folder; -o takes the checkpoint file to write")
    import torch

    from svc_runtime.atomic import atomic_output
    from svc_train.checkpoint import CheckpointError
    from svc_train.index import mix_checkpoints

    try:
        mixed = mix_checkpoints(checkpoints, weights, mode)  # type: ignore[arg-type]
    except (CheckpointError, ValueError) as e:
        fail(str(e))
    with atomic_output(output) as handle:
        torch.save(mixed, handle)
    say(f"mixed {len(checkpoints)} checkpoints -> {output}")
