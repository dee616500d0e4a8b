"""Gaussian diffusion over normalised log-mels with a shallow start (so-vits-svc 4.1 layout).

Buffers carry so-vits-svc's names (``betas``, ``alphas_cumprod``, ..., ``spec_min``,
``spec_max``) so its ``model_*.pt`` diffusion checkpoints load unchanged. Training
draws a step in [0, k_step_max); inference starts either from pure noise at the last
step or, for shallow diffusion, from the generator's mel noised to step ``k_step - 1``,
then runs one of the shared samplers of :mod:`svc_runtime.diffusion.samplers` (the same
code the runtime runs over the exported denoiser) or full DDPM when ``speedup == 1``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from svc_runtime.diffusion.samplers import sample as run_sampler
from svc_runtime.diffusion.schedule import (
    DEFAULT_MAX_BETA,
    DEFAULT_SPEC_MAX,
    DEFAULT_SPEC_MIN,
    NoiseSchedule,
)


class GaussianDiffusion(nn.Module):
    def __init__(
        self,
        denoise_fn: nn.Module,
        out_dims: int = 128,
        timesteps: int = 1000,
        k_step: int = 1000,
        max_beta: float = DEFAULT_MAX_BETA,
        spec_min: float = DEFAULT_SPEC_MIN,
        spec_max: float = DEFAULT_SPEC_MAX,
    ) -> None:
        super().__init__()
        self.denoise_fn = denoise_fn
        self.out_dims = out_dims
        self.schedule = NoiseSchedule(timesteps, max_beta)
        self.num_timesteps = timesteps
        self.k_step = k_step if 0 < k_step < timesteps else timesteps
        betas = self.schedule.betas
        ac = self.schedule.alphas_cumprod
        ac_prev = np.append(1.0, ac[:-1])
        posterior_variance = betas * (1.0 - ac_prev) / (1.0 - ac)

        def buffer(name: str, value: np.ndarray) -> None:
            self.register_buffer(name, torch.tensor(value, dtype=torch.float32))

        buffer("betas", betas)
        buffer("alphas_cumprod", ac)
        buffer("alphas_cumprod_prev", ac_prev)
        buffer("sqrt_alphas_cumprod", np.sqrt(ac))
        buffer("sqrt_one_minus_alphas_cumprod", np.sqrt(1.0 - ac))
        buffer("log_one_minus_alphas_cumprod", np.log(1.0 - ac))
        buffer("sqrt_recip_alphas_cumprod", np.sqrt(1.0 / ac))
        buffer("sqrt_recipm1_alphas_cumprod", np.sqrt(1.0 / ac - 1))
        buffer("posterior_variance", posterior_variance)
        buffer("posterior_log_variance_clipped", np.log(np.maximum(posterior_variance, 1e-20)))
        buffer("posterior_mean_coef1", betas * np.sqrt(ac_prev) / (1.0 - ac))
        buffer("posterior_mean_coef2", (1.0 - ac_prev) * np.sqrt(1.0 - betas) / (1.0 - ac))
        self.register_buffer("spec_min", torch.tensor([spec_min], dtype=torch.float32)[None, None, :out_dims])
        self.register_buffer("spec_max", torch.tensor([spec_max], dtype=torch.float32)[None, None, :out_dims])

    # mel layout here is so-vits-svc's: [B, T, M]; the denoiser sees [B, 1, M, T].
    def norm_spec(self, mel: torch.Tensor) -> torch.Tensor:
        return (mel - self.spec_min) / (self.spec_max - self.spec_min) * 2 - 1

    def denorm_spec(self, x: torch.Tensor) -> torch.Tensor:
        return (x + 1) / 2 * (self.spec_max - self.spec_min) + self.spec_min

    def _gather(self, values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return values.gather(-1, t).view(-1, 1, 1, 1)

    def q_sample(self, x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self._gather(self.sqrt_alphas_cumprod, t) * x_start + self._gather(self.sqrt_one_minus_alphas_cumprod, t) * noise

    def loss(
        self, cond: torch.Tensor, mel: torch.Tensor, t: torch.Tensor | None = None, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """cond [B, H, T]; mel [B, T, M] log-mel. L2 between drawn and predicted noise."""
        x_start = self.norm_spec(mel).transpose(1, 2)[:, None]  # [B, 1, M, T]
        if t is None:
            t = torch.randint(0, self.k_step, (x_start.size(0),), device=x_start.device)
        if noise is None:
            noise = torch.randn_like(x_start)
        predicted = self.denoise_fn(self.q_sample(x_start, t, noise), t, cond)
        return F.mse_loss(predicted, noise)

    @torch.no_grad()
    def sample(
        self,
        cond: torch.Tensor,
        gt_mel: torch.Tensor | None = None,
        k_step: int | None = None,
        method: str = "dpm-solver++",
        speedup: int = 10,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """cond [B, H, T]; gt_mel [B, T, M] (shallow start) or None (from pure noise).

        noise: [B, 1, M, T] standard normal for the start (drawn from ``generator`` when None).
        Returns the log-mel [B, T, M].
        """
        b, _, frames = cond.shape
        shape = (b, 1, self.out_dims, frames)
        if noise is None:
            noise = torch.randn(shape, generator=generator, device=cond.device)
        if gt_mel is None:
            if self.k_step != self.num_timesteps:
                raise ValueError(
                    f"this diffusion model was trained for shallow diffusion only (k_step_max={self.k_step} < "
                    f"timesteps={self.num_timesteps}); give it the generator's mel"
                )
            k_step = self.num_timesteps
            x = noise
        else:
            k_step = self.k_step if k_step is None else k_step
            if not 1 <= k_step <= self.k_step:
                raise ValueError(f"k_step must be in [1, k_step_max={self.k_step}], got {k_step}")
            x_start = self.norm_spec(gt_mel).transpose(1, 2)[:, None]
            x = self.q_sample(x_start, torch.full((b,), k_step - 1, device=cond.device, dtype=torch.long), noise)

        def denoise(x_t: torch.Tensor, t: float) -> torch.Tensor:
            return self.denoise_fn(x_t, torch.full((b,), t, device=cond.device, dtype=torch.float32), cond)

        if speedup > 1:
            x = run_sampler(denoise, x, self.schedule, k_step, method, speedup)
        else:
            x = self._ddpm(x, cond, k_step, generator)
        return self.denorm_spec(x.squeeze(1).transpose(1, 2))

    def _ddpm(self, x: torch.Tensor, cond: torch.Tensor, k_step: int, generator: torch.Generator | None) -> torch.Tensor:
        """Ancestral DDPM sampling, every step from k_step - 1 to 0 (x0 clipped to [-1, 1])."""
        b = x.size(0)
        for i in reversed(range(k_step)):
            t = torch.full((b,), i, device=x.device, dtype=torch.long)
            eps = self.denoise_fn(x, t, cond)
            x0 = (self._gather(self.sqrt_recip_alphas_cumprod, t) * x - self._gather(self.sqrt_recipm1_alphas_cumprod, t) * eps)
            x0 = x0.clamp(-1.0, 1.0)
            mean = self._gather(self.posterior_mean_coef1, t) * x0 + self._gather(self.posterior_mean_coef2, t) * x
            if i > 0:
                log_var = self._gather(self.posterior_log_variance_clipped, t)
                x = mean + (0.5 * log_var).exp() * torch.randn(x.shape, generator=generator, device=x.device)
            else:
                x = mean
        return x


__all__ = ["GaussianDiffusion"]
