"""NSF-HiFiGAN with anti-aliased Snake activations (`vocoder_name` "nsf-snake-hifigan").

so-vits-svc 4.1's `vdecoder/hifiganwithsnake`: the NSF-HiFiGAN layout with every
leaky ReLU replaced by SnakeBeta (log-scale alpha/beta) run at twice the rate between
Kaiser-windowed sinc up/down-samplers (alias-free-torch). State-dict keys match:
`snakes.<i>.act.alpha|beta`, `snakes.<i>.upsample.filter`,
`snakes.<i>.downsample.lowpass.filter`, `resblocks.<k>.activations.<j>.*`, `snake_post.*`.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from svc_train.models.nsf_hifigan import NsfHifiGan


def kaiser_sinc_filter(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    """Kaiser-windowed sinc low-pass, normalised to unit sum: [1, 1, kernel_size].

    cutoff and half_width in cycles per sample (0.5 = Nyquist).
    """
    even = kernel_size % 2 == 0
    half = kernel_size // 2
    delta_f = 4 * half_width
    attenuation = 2.285 * (half - 1) * math.pi * delta_f + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(kernel_size, beta=beta, periodic=False)
    time = torch.arange(-half, half) + 0.5 if even else torch.arange(kernel_size) - half
    taps = 2 * cutoff * window * torch.sinc(2 * cutoff * time)
    return (taps / taps.sum()).view(1, 1, kernel_size)


class UpSample1d(nn.Module):
    """x2 (by default) band-limited upsampling with replicate padding. [B, C, T] -> [B, C, T*ratio].

    `channels` is fixed at construction so the depthwise kernel [C, 1, K] has a static shape
    (torch.onnx cannot export a convolution whose kernel is sized from the input at run time).
    """

    def __init__(self, channels: int, ratio: int = 2, kernel_size: int = 12):
        super().__init__()
        self.channels = channels
        self.ratio = ratio
        self.pad = kernel_size // ratio - 1
        self.pad_left = self.pad * ratio + (kernel_size - ratio) // 2
        self.pad_right = self.pad * ratio + (kernel_size - ratio + 1) // 2
        self.register_buffer("filter", kaiser_sinc_filter(0.5 / ratio, 0.6 / ratio, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        x = self.ratio * F.conv_transpose1d(x, self.filter.expand(self.channels, -1, -1), stride=self.ratio,
                                            groups=self.channels)
        return x[..., self.pad_left:-self.pad_right]


class LowPassFilter1d(nn.Module):
    """Strided low-pass (decimation) with replicate padding. [B, C, T] -> [B, C, T/stride].

    `channels` is fixed at construction (static depthwise kernel shape, see `UpSample1d`).
    """

    def __init__(self, channels: int, cutoff: float, half_width: float, stride: int, kernel_size: int = 12):
        super().__init__()
        self.channels = channels
        even = kernel_size % 2 == 0
        self.pad_left = kernel_size // 2 - int(even)
        self.pad_right = kernel_size // 2
        self.stride = stride
        self.register_buffer("filter", kaiser_sinc_filter(cutoff, half_width, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad_left, self.pad_right), mode="replicate")
        return F.conv1d(x, self.filter.expand(self.channels, -1, -1), stride=self.stride, groups=self.channels)


class DownSample1d(nn.Module):
    def __init__(self, channels: int, ratio: int = 2, kernel_size: int = 12):
        super().__init__()
        self.lowpass = LowPassFilter1d(channels, 0.5 / ratio, 0.6 / ratio, ratio, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lowpass(x)


class SnakeBeta(nn.Module):
    """x + sin^2(alpha * x) / beta per channel, alpha and beta stored as logs. [B, C, T] -> same."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = torch.exp(self.alpha.unsqueeze(0).unsqueeze(-1))
        beta = torch.exp(self.beta.unsqueeze(0).unsqueeze(-1))
        return x + (1.0 / (beta + 1e-9)) * torch.pow(torch.sin(x * alpha), 2)


class SnakeAlias(nn.Module):
    """Anti-aliased SnakeBeta: upsample x2, activate, downsample x2. [B, C, T] -> same."""

    def __init__(self, channels: int, ratio: int = 2, kernel_size: int = 12):
        super().__init__()
        self.act = SnakeBeta(channels)
        self.upsample = UpSample1d(channels, ratio, kernel_size)
        self.downsample = DownSample1d(channels, ratio, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))


class NsfSnakeHifiGan(NsfHifiGan):
    """`NsfHifiGan` with every leaky ReLU replaced by `SnakeAlias` (same interface and keys
    as the reference): x [B, inter, T], f0 [B, T], g [B, gin, 1] -> [B, 1, T*hop]."""

    def __init__(self, inter_channels: int, resblock: str, resblock_kernel_sizes, resblock_dilation_sizes,
                 upsample_rates, upsample_initial_channel: int, upsample_kernel_sizes, gin_channels: int,
                 source_sr: float):
        super().__init__(inter_channels, resblock, resblock_kernel_sizes, resblock_dilation_sizes, upsample_rates,
                         upsample_initial_channel, upsample_kernel_sizes, gin_channels, source_sr,
                         activation=SnakeAlias)
