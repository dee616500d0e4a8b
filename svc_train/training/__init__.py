"""The so-vits-svc 4.1 training loop: schedule, distributed setup, checkpoints, logging, trainer.

Names load on first use (PEP 562): `svc_train.training.options` and `.progress` import without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainOptions": "svc_train.training.options",
    "Trainer": "svc_train.training.trainer",
    "train": "svc_train.training.trainer",
    "learning_rate_at": "svc_train.training.schedule",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'svc_train.training' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
