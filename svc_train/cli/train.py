"""`svc-train train -c config.json -m MODEL_DIR`: the so-vits-svc 4.1 training loop (torchrun for DDP)."""

from __future__ import annotations

import os

import typer

from svc_runtime.cli.base import console, fail, say
from svc_runtime.cli.dataclass_options import Flag, with_options
from svc_train.training.options import TrainOptions

# Flag names and help of TrainOptions' fields; defaults and checks come from the dataclass.
TRAIN_FLAGS: dict[str, Flag] = {
    "config_path": Flag(("--config", "-c"), "config.json (features computed with `svc-train features`)."),
    "model_dir": Flag(("--model-dir", "-m"), "Checkpoints, logs and TensorBoard events go here."),
    "max_steps": Flag(("--max-steps",), "Train until the model has this many steps in total (a resumed run counts "
                      "the steps already done; default: train.epochs epochs)."),
    "device": Flag(("--device",), "cpu, cuda or cuda:N (default: CUDA when available)."),
    "grad_clip": Flag(("--grad-clip",), "Clamp gradients to [-X, X] (default: no clipping, as so-vits-svc)."),
    "workers": Flag(("--workers", "-j"), "DataLoader worker processes; 0 = load in this process (on a GPU, 2-4 "
                    "keep it fed)."),
    "tensorboard": Flag(("--tensorboard/--no-tensorboard",), "Write TensorBoard events (metrics.jsonl is always "
                        "written)."),
    "discriminator_scale": Flag(("--d-channel-scale",), "Discriminator width factor; 1.0 = so-vits-svc's (needed "
                                "for its D_0.pth); the CPU preset uses 0.25."),
    "log_every": Flag(("--log-every",), "Print losses every N steps (default: the config's log_interval on a GPU, "
                      "at most 10 on the CPU)."),
}


@with_options(TrainOptions, TRAIN_FLAGS)
def train_command(
    options: TrainOptions,
    threads: int = typer.Option(
        0, min=0, help="Torch CPU threads (0: torch's default). On a busy machine 1 is often fastest: waiting "
        "threads spin on the cores the other processes need."),
) -> None:
    """Train (or resume, or fine-tune from G_0.pth/D_0.pth in MODEL_DIR) a so-vits-svc 4.1 model.

    Several GPUs or machines: torchrun --nproc_per_node=N $(which svc-train) train -c config.json -m MODEL_DIR
    """
    from svc_train.checkpoint import CheckpointError
    from svc_train.config import ConfigError
    from svc_train.data.features import FeatureError
    from svc_train.training.trainer import train

    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        last = train(options, console())
    except (ConfigError, CheckpointError, FeatureError, FileNotFoundError, ValueError) as e:
        fail(str(e))
    if os.environ.get("RANK", "0") == "0":
        if last < 0:
            say(f"nothing to train: the newest checkpoint in {options.model_dir} is already at --max-steps "
                f"{options.max_steps}")
        else:
            say(f"training stopped after step {last}; checkpoints in {options.model_dir}")
