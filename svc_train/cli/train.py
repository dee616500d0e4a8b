"""`svc-train train -c config.json -m MODEL_DIR`: the so-vits-svc 4.1 training loop (torchrun for DDP)."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console

from svc_train.cli._errors import exit_with_error
from svc_train.cli.app import app


@app.command("train")
def train_command(
    config: Path = typer.Option(..., "--config", "-c", help="config.json (features computed with `svc-train features`)."),
    model_dir: Path = typer.Option(..., "--model-dir", "-m", help="Checkpoints, logs and TensorBoard events go here."),
    max_steps: int | None = typer.Option(None, help="Stop before this global step (default: train.epochs epochs)."),
    device: str | None = typer.Option(None, help="cpu, cuda or cuda:N (default: CUDA when available)."),
    grad_clip: float | None = typer.Option(None, help="Clamp gradients to [-X, X] (default: no clipping, as so-vits-svc)."),
    workers: int = typer.Option(2, "--workers", "-j", help="DataLoader worker processes (0: in the training process)."),
    tensorboard: bool = typer.Option(True, help="Write TensorBoard events (metrics.jsonl is always written)."),
    d_channel_scale: float = typer.Option(
        1.0, help="Discriminator width factor; 1.0 = so-vits-svc's (needed for its D_0.pth); <1 for CPU smoke runs."
    ),
) -> None:
    """Train (or resume, or fine-tune from G_0.pth/D_0.pth in MODEL_DIR) a so-vits-svc 4.1 model.

    Multi-GPU / multi-machine: torchrun --nproc_per_node=N $(which svc-train) train -c ... -m ...
    """
    from svc_train.checkpoint import CheckpointError
    from svc_train.config import ConfigError
    from svc_train.data.features import FeatureError
    from svc_train.training import TrainOptions, train

    if max_steps is not None and max_steps < 1:
        exit_with_error("--max-steps must be at least 1")
    options = TrainOptions(
        config_path=config, model_dir=model_dir, max_steps=max_steps, device=device, grad_clip=grad_clip,
        workers=workers, tensorboard=tensorboard, discriminator_scale=d_channel_scale,
    )
    try:
        last = train(options, Console(stderr=True))
    except (ConfigError, CheckpointError, FeatureError, FileNotFoundError, ValueError) as e:
        exit_with_error(str(e))
    if os.environ.get("RANK", "0") == "0":
        Console(stderr=True).print(f"training stopped after step {last}; checkpoints in {model_dir}")
