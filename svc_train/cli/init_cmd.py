"""`svc-train init -c CONFIG -o G_0.pth [--seed N]`: a randomly initialised generator checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from svc_train.cli._errors import exit_with_error
from svc_train.cli.app import app


@app.command("init")
def init_command(
    config: Path = typer.Option(..., "--config", "-c", help="so-vits-svc 4.1 config.json that sets the model size."),
    output: Path = typer.Option(..., "--output", "-o", help="Checkpoint to write, e.g. G_0.pth."),
    seed: int | None = typer.Option(None, help="Seed for the initial weights (default: the config's train.seed)."),
) -> None:
    """Write a freshly initialised SynthesizerTrn as a so-vits-svc G_*.pth (model, iteration, optimizer, learning_rate).

    The file loads in so-vits-svc 4.1 and in `svc_train.load_generator`; use it for benchmarks
    and tests at real model sizes without downloading pretrained weights.
    """
    import torch

    from svc_train.checkpoint import build_generator, save_checkpoint
    from svc_train.config import ConfigError, SvcConfig

    console = Console(stderr=True)
    try:
        svc_config = SvcConfig.load(config)
    except ConfigError as e:
        exit_with_error(str(e))
    torch.manual_seed(svc_config.train.seed if seed is None else seed)
    model = build_generator(svc_config)
    train = svc_config.train
    optimizer = torch.optim.AdamW(model.parameters(), train.learning_rate, betas=train.betas, eps=train.eps)
    try:
        save_checkpoint(output, model, iteration=0, learning_rate=train.learning_rate, optimizer=optimizer)
    except OSError as e:
        exit_with_error(f"cannot write {output}: {e}")
    n_params = sum(p.numel() for p in model.parameters())
    console.print(f"wrote {output}: {n_params / 1e6:.2f} M parameters, {len(model.state_dict())} tensors")
