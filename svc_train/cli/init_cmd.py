"""`svc-train init -c CONFIG -o G_0.pth [--seed N]`: a randomly initialised generator checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from svc_runtime.cli.base import ExitCode, fail, say


def init_command(
    config: Path = typer.Option(..., "--config", "-c", help="so-vits-svc 4.1 config.json that sets the model size."),
    output: Path = typer.Option(..., "--output", "-o", help="Checkpoint to write, e.g. G_0.pth (folders created)."),
    seed: Optional[int] = typer.Option(None, help="Seed for the initial weights (default: the config's train.seed)."),
) -> None:
    """Write a freshly initialised SynthesizerTrn as a so-vits-svc G_*.pth (model, iteration, optimizer, learning_rate).

    The file loads in so-vits-svc 4.1 and in `svc_train.load_generator`; use it for benchmarks
    and tests at real model sizes without downloading pretrained weights.
    """
    if output.is_dir():
        fail(f"{output}: is a folder; -o takes the checkpoint file to write")
    import torch

    from svc_train.checkpoint import build_generator, save_checkpoint
    from svc_train.config import ConfigError, SvcConfig

    try:
        svc_config = SvcConfig.load(config)
    except ConfigError as e:
        fail(str(e))
    torch.manual_seed(svc_config.train.seed if seed is None else seed)
    model = build_generator(svc_config)
    train = svc_config.train
    optimizer = torch.optim.AdamW(model.parameters(), train.learning_rate, betas=train.betas, eps=train.eps)
    try:
        save_checkpoint(output, model, iteration=0, learning_rate=train.learning_rate, optimizer=optimizer)
    except OSError as e:
        fail(f"cannot write {output}: {e}", ExitCode.FAILED)
    n_params = sum(p.numel() for p in model.parameters())
    say(f"wrote {output}: {n_params / 1e6:.2f} M parameters, {len(model.state_dict())} tensors")
