"""`svc-train train -c config.json -m MODEL_DIR`: the so-vits-svc 4.1 training loop (torchrun for DDP)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from svc_runtime.cli.base import console, fail, say


def train_command(
    config: Path = typer.Option(..., "--config", "-c", help="config.json (features computed with `svc-train features`).",
                                show_default=False),
    model_dir: Path = typer.Option(..., "--model-dir", "-m", help="Checkpoints, logs and TensorBoard events go here.",
                                   show_default=False),
    max_steps: Optional[int] = typer.Option(
        None, min=1, help="Train until the model has this many steps in total (a resumed run counts the steps "
        "already done; default: train.epochs epochs)."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda or cuda:N (default: CUDA when available)."),
    grad_clip: Optional[float] = typer.Option(None, help="Clamp gradients to [-X, X] (default: no clipping, as so-vits-svc)."),
    workers: int = typer.Option(2, "--workers", "-j", min=0,
                                help="DataLoader worker processes; 0 = load in this process."),
    tensorboard: bool = typer.Option(True, "--tensorboard/--no-tensorboard",
                                     help="Write TensorBoard events (metrics.jsonl is always written)."),
    d_channel_scale: float = typer.Option(
        1.0, help="Discriminator width factor; 1.0 = so-vits-svc's (needed for its D_0.pth); the CPU preset "
        "uses 0.25."),
    threads: int = typer.Option(
        0, min=0, help="Torch CPU threads (0: torch's default). On a busy machine 1 is often fastest: waiting "
        "threads spin on the cores the other processes need."),
    log_every: Optional[int] = typer.Option(
        None, min=1, help="Print losses every N steps (default: the config's log_interval on a GPU, at most 10 "
        "on the CPU)."),
) -> None:
    """Train (or resume, or fine-tune from G_0.pth/D_0.pth in MODEL_DIR) a so-vits-svc 4.1 model.

    Several GPUs or machines: torchrun --nproc_per_node=N $(which svc-train) train -c config.json -m MODEL_DIR
    """
    from svc_train.checkpoint import CheckpointError
    from svc_train.config import ConfigError
    from svc_train.data.features import FeatureError
    from svc_train.training import TrainOptions, train

    if threads:
        import torch

        torch.set_num_threads(threads)
    options = TrainOptions(
        config_path=config, model_dir=model_dir, max_steps=max_steps, device=device, grad_clip=grad_clip,
        workers=workers, tensorboard=tensorboard, discriminator_scale=d_channel_scale, log_every=log_every,
    )
    try:
        last = train(options, console())
    except (ConfigError, CheckpointError, FeatureError, FileNotFoundError, ValueError) as e:
        fail(str(e))
    if os.environ.get("RANK", "0") == "0":
        if last < 0:
            say(f"nothing to train: the newest checkpoint in {model_dir} is already at --max-steps {max_steps}")
        else:
            say(f"training stopped after step {last}; checkpoints in {model_dir}")
