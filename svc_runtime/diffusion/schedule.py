"""The DDPM noise schedule of so-vits-svc 4.1's diffusion model, in numpy.

Linear betas from 1e-4 to ``max_beta`` over ``timesteps`` steps (so-vits-svc's
``linear_beta_schedule``), their cumulative products, the shallow-diffusion start
``q_sample`` and the mel normalisation to [-1, 1]. Shared by the torch model
(:mod:`svc_train.diffusion`) and the runtime sampler so both use the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

DEFAULT_MAX_BETA = 0.02
DEFAULT_SPEC_MIN = -12.0
DEFAULT_SPEC_MAX = 2.0


@dataclass(frozen=True)
class NoiseSchedule:
    """Linear-beta DDPM schedule. ``timesteps``: N; steps are indexed 0 .. N-1."""

    timesteps: int = 1000
    max_beta: float = DEFAULT_MAX_BETA

    def __post_init__(self) -> None:
        if self.timesteps < 2:
            raise ValueError(f"timesteps must be >= 2, got {self.timesteps}")
        if not 0.0 < self.max_beta < 1.0:
            raise ValueError(f"max_beta must be in (0, 1), got {self.max_beta}")

    @cached_property
    def betas(self) -> np.ndarray:
        """[N] float64."""
        return np.linspace(1e-4, self.max_beta, self.timesteps)

    @cached_property
    def alphas_cumprod(self) -> np.ndarray:
        """[N] float64, prod_{s <= t} (1 - beta_s)."""
        return np.cumprod(1.0 - self.betas)

    def check_k_step(self, k_step: int, k_step_max: int | None = None) -> None:
        """Raise a clear error when a shallow start ``k_step`` is out of range."""
        limit = self.timesteps if k_step_max is None else k_step_max
        if not 1 <= k_step <= limit:
            raise ValueError(
                f"k_step must be in [1, {limit}] (the model's k_step_max), got {k_step}; "
                "pass a smaller --k-step"
            )

    def q_sample(self, x_start, step: int, noise):
        """Noise a clean normalised mel to step ``step``: sqrt(a)*x + sqrt(1-a)*noise.

        Works on any array type with ``*`` and ``+`` (numpy, torch). The shallow start of
        so-vits-svc uses ``step = k_step - 1``.
        """
        a = float(self.alphas_cumprod[step])
        return x_start * np.sqrt(a) + noise * np.sqrt(1.0 - a)


def normalize_mel(mel, spec_min: float = DEFAULT_SPEC_MIN, spec_max: float = DEFAULT_SPEC_MAX):
    """Log-mel to [-1, 1]: (mel - min) / (max - min) * 2 - 1 (any array type)."""
    return (mel - spec_min) / (spec_max - spec_min) * 2.0 - 1.0


def denormalize_mel(x, spec_min: float = DEFAULT_SPEC_MIN, spec_max: float = DEFAULT_SPEC_MAX):
    """Inverse of :func:`normalize_mel`."""
    return (x + 1.0) / 2.0 * (spec_max - spec_min) + spec_min


__all__ = ["NoiseSchedule", "denormalize_mel", "normalize_mel"]
