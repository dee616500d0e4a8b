"""Unit2Mel: content units, F0, volume and speaker to a mel via Gaussian diffusion.

Parameter names match so-vits-svc 4.1's ``diffusion/unit2mel.py`` (``unit_embed``,
``f0_embed``, ``volume_embed``, ``aug_shift_embed``, ``spk_embed``, ``decoder.*``), so
its checkpoints (``{"model": state_dict}``) load. Tensor layouts are so-vits-svc's:
units [B, T, C], f0 and volume [B, T, 1], mel [B, T, M]; speakers are 0-based ids
[B, 1] or mixing weights [B, n_spk].
"""

from __future__ import annotations

import torch
from torch import nn

from svc_train.diffusion.config import DiffusionConfig
from svc_train.diffusion.gaussian import GaussianDiffusion
from svc_train.diffusion.wavenet import WaveNet


class Unit2Mel(nn.Module):
    def __init__(
        self,
        input_channel: int,
        n_spk: int,
        use_pitch_aug: bool = False,
        out_dims: int = 128,
        n_layers: int = 20,
        n_chans: int = 384,
        n_hidden: int = 256,
        timesteps: int = 1000,
        k_step_max: int = 1000,
    ) -> None:
        super().__init__()
        self.input_channel = input_channel
        self.n_spk = n_spk
        self.n_hidden = n_hidden
        self.out_dims = out_dims
        self.unit_embed = nn.Linear(input_channel, n_hidden)
        self.f0_embed = nn.Linear(1, n_hidden)
        self.volume_embed = nn.Linear(1, n_hidden)
        self.aug_shift_embed = nn.Linear(1, n_hidden, bias=False) if use_pitch_aug else None
        if n_spk > 1:
            self.spk_embed = nn.Embedding(n_spk, n_hidden)
        self.timesteps = timesteps
        self.k_step_max = k_step_max if 0 < k_step_max < timesteps else timesteps
        self.decoder = GaussianDiffusion(
            WaveNet(out_dims, n_layers, n_chans, n_hidden), out_dims=out_dims, timesteps=timesteps, k_step=self.k_step_max
        )

    @classmethod
    def from_config(cls, config: DiffusionConfig, out_dims: int) -> Unit2Mel:
        m = config.model
        return cls(
            config.data.encoder_out_channels, m.n_spk, m.use_pitch_aug, out_dims,
            m.n_layers, m.n_chans, m.n_hidden, m.timesteps, m.k_step_max,
        )

    def condition(
        self,
        units: torch.Tensor,
        f0: torch.Tensor,
        volume: torch.Tensor,
        spk: torch.Tensor | None = None,
        aug_shift: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """units [B, T, C]; f0 [B, T, 1] Hz; volume [B, T, 1]; spk: ids [B, 1] (long) or
        mixing weights [B, n_spk] (float); aug_shift [B, 1, 1] semitones. -> cond [B, H, T]."""
        x = self.unit_embed(units) + self.f0_embed((1 + f0 / 700).log()) + self.volume_embed(volume)
        if self.n_spk > 1:
            if spk is None:
                raise ValueError(f"this model has {self.n_spk} speakers; pass a speaker id or mix")
            if spk.dtype in (torch.int32, torch.int64):
                x = x + self.spk_embed(spk.view(-1, 1))
            else:
                x = x + (spk.float() @ self.spk_embed.weight).unsqueeze(1)
        if self.aug_shift_embed is not None and aug_shift is not None:
            x = x + self.aug_shift_embed(aug_shift / 5)
        return x.transpose(1, 2)

    def loss(self, units, f0, volume, spk, mel, aug_shift=None) -> torch.Tensor:
        """Training loss for a batch (mel [B, T, M] log-mel)."""
        return self.decoder.loss(self.condition(units, f0, volume, spk, aug_shift), mel)

    @torch.no_grad()
    def infer(
        self,
        units, f0, volume, spk=None, gt_mel=None, k_step: int | None = None,
        method: str = "dpm-solver++", speedup: int = 10, noise=None, generator=None,
    ) -> torch.Tensor:
        """Render a log-mel [B, T, M]; with ``gt_mel`` [B, T, M] it is shallow diffusion from ``k_step``."""
        cond = self.condition(units, f0, volume, spk)
        return self.decoder.sample(cond, gt_mel, k_step, method, speedup, noise, generator)


__all__ = ["Unit2Mel"]
