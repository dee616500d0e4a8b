"""The so-vits-svc 4.1 training loop: schedule, distributed setup, checkpoints, logging, trainer.

Names load on first use (PEP 562): `svc_train.training.options` and `.progress` import without torch.
"""

from __future__ import annotations

from svc_runtime.lazy import lazy_getattr

_EXPORTS = {
    "TrainOptions": "svc_train.training.options",
    "Trainer": "svc_train.training.trainer",
    "train": "svc_train.training.trainer",
    "learning_rate_at": "svc_train.training.schedule",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
