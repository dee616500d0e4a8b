"""The WaveNet noise predictor of so-vits-svc 4.1's diffusion model (same parameter names).

``forward(spec [B, 1, M, T], step [B] float, cond [B, H, T]) -> eps [B, 1, M, T]``.
The diffusion step may be fractional (DPM-Solver evaluates between integer steps).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def step_embedding(step: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of diffusion steps: [B] -> [B, dim] (sin half, then cos half)."""
    half = dim // 2
    scale = math.log(10000) / (half - 1)
    freqs = torch.exp(torch.arange(half, device=step.device, dtype=torch.float32) * -scale)
    angles = step.float()[:, None] * freqs[None, :]
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


class ResidualBlock(nn.Module):
    def __init__(self, encoder_hidden: int, residual_channels: int, dilation: int) -> None:
        super().__init__()
        self.residual_channels = residual_channels
        self.dilated_conv = nn.Conv1d(residual_channels, 2 * residual_channels, 3, padding=dilation, dilation=dilation)
        self.diffusion_projection = nn.Linear(residual_channels, residual_channels)
        self.conditioner_projection = nn.Conv1d(encoder_hidden, 2 * residual_channels, 1)
        self.output_projection = nn.Conv1d(residual_channels, 2 * residual_channels, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, step: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = x + self.diffusion_projection(step).unsqueeze(-1)
        y = self.dilated_conv(y) + self.conditioner_projection(cond)
        gate, filt = torch.split(y, [self.residual_channels, self.residual_channels], dim=1)
        y = self.output_projection(torch.sigmoid(gate) * torch.tanh(filt))
        residual, skip = torch.split(y, [self.residual_channels, self.residual_channels], dim=1)
        return (x + residual) / math.sqrt(2.0), skip


class WaveNet(nn.Module):
    def __init__(self, in_dims: int = 128, n_layers: int = 20, n_chans: int = 384, n_hidden: int = 256) -> None:
        super().__init__()
        self.n_chans = n_chans
        self.input_projection = nn.Conv1d(in_dims, n_chans, 1)
        self.mlp = nn.Sequential(nn.Linear(n_chans, n_chans * 4), nn.Mish(), nn.Linear(n_chans * 4, n_chans))
        self.residual_layers = nn.ModuleList(ResidualBlock(n_hidden, n_chans, 1) for _ in range(n_layers))
        self.skip_projection = nn.Conv1d(n_chans, n_chans, 1)
        self.output_projection = nn.Conv1d(n_chans, in_dims, 1)
        nn.init.kaiming_normal_(self.input_projection.weight)
        nn.init.kaiming_normal_(self.skip_projection.weight)
        nn.init.zeros_(self.output_projection.weight)

    def forward(self, spec: torch.Tensor, step: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.input_projection(spec.squeeze(1)))
        step_vec = self.mlp(step_embedding(step, self.n_chans))
        skips = []
        for layer in self.residual_layers:
            x, skip = layer(x, cond, step_vec)
            skips.append(skip)
        x = torch.sum(torch.stack(skips), dim=0) / math.sqrt(len(self.residual_layers))
        x = self.output_projection(F.relu(self.skip_projection(x)))
        return x[:, None, :, :]


__all__ = ["WaveNet", "step_embedding"]
