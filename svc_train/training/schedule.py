"""Learning rate per epoch: linear warm-up, then exponential decay (so-vits-svc 4.1's schedule)."""

from __future__ import annotations


def learning_rate_at(epoch: int, base_lr: float, lr_decay: float, warmup_epochs: int = 0) -> float:
    """Learning rate of 1-based ``epoch``.

    Warm-up epochs ``1..w`` ramp linearly to ``base_lr`` (``base_lr * epoch / w``);
    afterwards the rate decays by ``lr_decay`` per epoch from ``base_lr``:
    ``base_lr * lr_decay ** (epoch - max(w, 1))``. This is the rate so-vits-svc's
    ``ExponentialLR`` gives a run that is never interrupted; computing it from the
    epoch makes a resumed run continue with exactly that rate (so-vits-svc's own
    resume applies one decay step too many).
    """
    if epoch < 1:
        raise ValueError(f"epochs count from 1, got {epoch}")
    if warmup_epochs > 0 and epoch <= warmup_epochs:
        return base_lr * epoch / warmup_epochs
    return base_lr * lr_decay ** (epoch - max(warmup_epochs, 1))


__all__ = ["learning_rate_at"]
