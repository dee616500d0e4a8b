"""NSF-HiFiGAN decoder (`dec`) of so-vits-svc 4.1: latent z + f0 -> waveform."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from svc_train.models.modules import LRELU_SLOPE, ActivationFactory, ResBlock1, ResBlock2, apply_weight_norm
from svc_train.models.nsf_source import SourceModuleHnNSF


class NsfHifiGan(nn.Module):
    """x: [B, inter, T] latent, f0: [B, T] Hz, g: [B, gin, 1] -> audio [B, 1, T*hop] in (-1, 1).

    hop = prod(upsample_rates). The NSF source's harmonic excitation is injected at every
    upsampling stage through a strided conv (`noise_convs`). The source's randomness is
    explicit: `phase` [B, T, 9] frame-start phases (or `rand_ini` [B, 9] initial phases) and
    `sine_noise` [B, T*hop, 9]; whatever is None is drawn from the torch RNG.

    Every activation is a leaky ReLU unless `activation` builds modules instead (the
    nsf-snake-hifigan variant): then one per upsampling stage (`snakes.<i>`), one before
    `conv_post` (`snake_post`) and one per resblock conv (`resblocks.<k>.activations.<j>`).
    """

    def __init__(self, inter_channels: int, resblock: str, resblock_kernel_sizes, resblock_dilation_sizes,
                 upsample_rates, upsample_initial_channel: int, upsample_kernel_sizes, gin_channels: int,
                 source_sr: float, activation: ActivationFactory | None = None):
        super().__init__()
        if resblock not in ("1", "2"):
            raise ValueError(f'resblock must be "1" or "2", got {resblock!r}')
        self.num_kernels = len(resblock_kernel_sizes)
        self.num_upsamples = len(upsample_rates)
        self.hop = math.prod(upsample_rates)
        self.m_source = SourceModuleHnNSF(source_sr)
        self.noise_convs = nn.ModuleList()
        self.conv_pre = apply_weight_norm(nn.Conv1d(inter_channels, upsample_initial_channel, 7, 1, padding=3))
        block = ResBlock1 if resblock == "1" else ResBlock2
        self.ups = nn.ModuleList()
        for i, (rate, kernel) in enumerate(zip(upsample_rates, upsample_kernel_sizes)):
            c_in = upsample_initial_channel // (2**i)
            c_out = upsample_initial_channel // (2 ** (i + 1))
            self.ups.append(apply_weight_norm(
                nn.ConvTranspose1d(c_in, c_out, kernel, rate, padding=(kernel - rate + 1) // 2)))
            if i + 1 < len(upsample_rates):
                stride = math.prod(upsample_rates[i + 1:])
                self.noise_convs.append(nn.Conv1d(1, c_out, kernel_size=stride * 2, stride=stride,
                                                  padding=(stride + 1) // 2))
            else:
                self.noise_convs.append(nn.Conv1d(1, c_out, kernel_size=1))
        # Registration order fixes the state-dict order: resblocks, snakes, conv_post, snake_post, cond.
        self.resblocks = nn.ModuleList()
        self.snakes = None if activation is None else nn.ModuleList(
            activation(upsample_initial_channel // (2**i)) for i in range(self.num_upsamples))
        for i in range(len(self.ups)):
            ch = upsample_initial_channel // (2 ** (i + 1))
            for k, d in zip(resblock_kernel_sizes, resblock_dilation_sizes):
                self.resblocks.append(block(ch, k, tuple(d), activation))
        self.conv_post = apply_weight_norm(nn.Conv1d(ch, 1, 7, 1, padding=3))
        self.snake_post = None if activation is None else activation(ch)
        self.cond = nn.Conv1d(gin_channels, upsample_initial_channel, 1)

    def forward(self, x: torch.Tensor, f0: torch.Tensor, g: torch.Tensor | None = None, *,
                phase: torch.Tensor | None = None, rand_ini: torch.Tensor | None = None,
                sine_noise: torch.Tensor | None = None) -> torch.Tensor:
        har_source = self.source(f0, phase=phase, rand_ini=rand_ini, sine_noise=sine_noise)
        x = self.head(x, g)
        for i in range(self.num_upsamples):
            x = self.stage(i, x, har_source)
        return self.tail(x)

    # The steps of `forward`, also run one by one (the export's `DecoderHalves` splits the later stages).
    def source(self, f0: torch.Tensor, *, phase: torch.Tensor | None = None, rand_ini: torch.Tensor | None = None,
               sine_noise: torch.Tensor | None = None) -> torch.Tensor:
        """The NSF harmonic source: f0 [B, T] Hz -> [B, 1, T*hop]."""
        return self.m_source(f0, self.hop, phase=phase, rand_ini=rand_ini, sine_noise=sine_noise).transpose(1, 2)

    def head(self, x: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        """[B, inter, T] (+ speaker [B, gin, T or 1]) -> [B, upsample_initial_channel, T]."""
        x = self.conv_pre(x)
        return x if g is None else x + self.cond(g)

    def stage(self, i: int, x: torch.Tensor, har_source: torch.Tensor) -> torch.Tensor:
        """Upsampling stage i: [B, C_i, T * r_i] -> [B, C_i / 2, T * r_i * upsample_rates[i]], with the source
        [B, 1, T*hop] injected through `noise_convs[i]` and the mean of the stage's residual blocks."""
        x = self.ups[i](F.leaky_relu(x, LRELU_SLOPE) if self.snakes is None else self.snakes[i](x))
        x = x + self.noise_convs[i](har_source)
        xs = self.resblocks[i * self.num_kernels](x)
        for j in range(1, self.num_kernels):
            xs = xs + self.resblocks[i * self.num_kernels + j](x)
        return xs / self.num_kernels

    def tail(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, T*hop] -> audio [B, 1, T*hop] in (-1, 1)."""
        x = self.conv_post(F.leaky_relu(x) if self.snake_post is None else self.snake_post(x))  # plain: slope 0.01
        return torch.tanh(x)
