"""The so-vits-svc 4.1 training loop: schedule, distributed setup, checkpoints, logging, trainer."""

from svc_train.training.schedule import learning_rate_at
from svc_train.training.trainer import Trainer, TrainOptions, train

__all__ = ["TrainOptions", "Trainer", "learning_rate_at", "train"]
