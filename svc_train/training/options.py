"""Run settings of the training loop that are not part of config.json (torch-free: the CLI reads
its defaults from here without loading torch)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TrainOptions:
    """Run settings that are not part of config.json.

    max_steps: train until the model has this many steps in total, i.e. stop before this global
        step; a resumed run counts the steps already done (None: run ``train.epochs`` epochs).
    device: "cpu", "cuda", "cuda:N" or None (CUDA when available).
    grad_clip: clamp every gradient element to [-grad_clip, grad_clip] (None: no clipping,
        as so-vits-svc, which only logs the gradient norm).
    workers: DataLoader worker processes (0: load in the training process).
    tensorboard: write TensorBoard event files (metrics.jsonl is always written).
    discriminator_scale: width factor of the discriminator; 1.0 is so-vits-svc's network (the
        only one whose D checkpoints are interchangeable with it); smaller is for CPU smoke runs.
    log_every: print the losses every this many steps (None: the config's ``log_interval`` on a
        GPU, at most `progress.CPU_LOG_EVERY` on the CPU); TensorBoard keeps ``log_interval``.
    """

    config_path: Path
    model_dir: Path
    max_steps: int | None = None
    device: str | None = None
    grad_clip: float | None = None
    workers: int = 0
    tensorboard: bool = True
    discriminator_scale: float = 1.0
    log_every: int | None = None

    def __post_init__(self) -> None:
        checks = [
            (self.max_steps is None or self.max_steps >= 1, "max steps must be at least 1"),
            (self.grad_clip is None or self.grad_clip > 0, "gradient clip must be > 0"),
            (self.workers >= 0, "workers must be >= 0 (0: load in this process)"),
            (self.discriminator_scale > 0, "discriminator scale must be > 0"),
            (self.log_every is None or self.log_every >= 1, "log every must be at least 1 step"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


__all__ = ["TrainOptions"]
