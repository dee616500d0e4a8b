"""The HiFi-GAN multi-period discriminator of so-vits-svc 4.1 (``models.py``).

One scale discriminator on the raw waveform plus five period discriminators
(periods 2, 3, 5, 7, 11) that fold the waveform into ``[T / p, p]`` images.
State-dict keys are so-vits-svc's own: ``discriminators.{i}.convs.{j}`` and
``discriminators.{i}.conv_post``, each with ``bias``, ``weight_g`` and
``weight_v`` (classic weight norm) or ``weight_orig``/``weight_u``/``weight_v``
with ``use_spectral_norm``.

``channel_scale`` (default 1.0, the reference network) narrows every layer by
that factor, for smoke tests and CPU benchmarks only: a scaled discriminator's
checkpoints do not load in so-vits-svc and do not fit its pretrained ``D_0.pth``.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.1
PERIODS = (2, 3, 5, 7, 11)


def _normed(layer: nn.Module, use_spectral_norm: bool) -> nn.Module:
    """Wrap a conv in classic weight norm (``weight_g``/``weight_v`` keys) or spectral norm."""
    if use_spectral_norm:
        return nn.utils.spectral_norm(layer)
    with warnings.catch_warnings():
        # The classic hook keeps so-vits-svc's key names; the parametrization API would rename them.
        warnings.simplefilter("ignore", FutureWarning)
        return nn.utils.weight_norm(layer)


def _padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


def _width(channels: int, scale: float) -> int:
    return channels if scale == 1.0 else max(1, int(round(channels * scale)))


def _groups(groups: int, c_in: int, c_out: int, scale: float) -> int:
    """Scaled group count that still divides both channel counts."""
    if scale == 1.0:
        return groups
    g = max(1, int(groups * scale))
    return math.gcd(math.gcd(g, c_in), c_out)


def _conv_stack(x: torch.Tensor, convs: nn.ModuleList, conv_post: nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Each conv then a leaky ReLU, then `conv_post`: (logits flattened to [B, N], every layer's output)."""
    fmap = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU_SLOPE)
        fmap.append(x)
    x = conv_post(x)
    fmap.append(x)
    return torch.flatten(x, 1, -1), fmap


class DiscriminatorP(nn.Module):
    """Period discriminator: [B, 1, T] -> (logits [B, N], feature maps)."""

    def __init__(
        self,
        period: int,
        kernel_size: int = 5,
        stride: int = 3,
        use_spectral_norm: bool = False,
        channel_scale: float = 1.0,
    ):
        super().__init__()
        self.period = period
        self.use_spectral_norm = use_spectral_norm
        pad = (_padding(kernel_size), 0)
        channels = [1] + [_width(c, channel_scale) for c in (32, 128, 512, 1024)]
        top = channels[-1]
        convs = [
            nn.Conv2d(c_in, c_out, (kernel_size, 1), (stride, 1), padding=pad)
            for c_in, c_out in zip(channels[:-1], channels[1:])
        ]
        convs.append(nn.Conv2d(top, top, (kernel_size, 1), 1, padding=pad))
        self.convs = nn.ModuleList([_normed(c, use_spectral_norm) for c in convs])
        self.conv_post = _normed(nn.Conv2d(top, 1, (3, 1), 1, padding=(1, 0)), use_spectral_norm)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = x.shape
        if t % self.period != 0:
            n_pad = self.period - (t % self.period)
            x = F.pad(x, (0, n_pad), "reflect")
            t = t + n_pad
        return _conv_stack(x.view(b, c, t // self.period, self.period), self.convs, self.conv_post)


class DiscriminatorS(nn.Module):
    """Scale discriminator on the raw waveform: [B, 1, T] -> (logits [B, N], feature maps)."""

    def __init__(self, use_spectral_norm: bool = False, channel_scale: float = 1.0):
        super().__init__()
        c16, c64, c256, c1024 = (_width(c, channel_scale) for c in (16, 64, 256, 1024))

        def grouped(c_in: int, c_out: int, groups: int) -> nn.Conv1d:
            g = _groups(groups, c_in, c_out, channel_scale)
            return nn.Conv1d(c_in, c_out, 41, 4, groups=g, padding=20)

        convs = [
            nn.Conv1d(1, c16, 15, 1, padding=7),
            grouped(c16, c64, 4),
            grouped(c64, c256, 16),
            grouped(c256, c1024, 64),
            grouped(c1024, c1024, 256),
            nn.Conv1d(c1024, c1024, 5, 1, padding=2),
        ]
        self.convs = nn.ModuleList([_normed(c, use_spectral_norm) for c in convs])
        self.conv_post = _normed(nn.Conv1d(c1024, 1, 3, 1, padding=1), use_spectral_norm)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _conv_stack(x, self.convs, self.conv_post)


class MultiPeriodDiscriminator(nn.Module):
    """Scale + period discriminators applied to real and generated audio [B, 1, T].

    Returns (real logits, generated logits, real feature maps, generated feature maps),
    one entry per sub-discriminator.
    """

    def __init__(self, use_spectral_norm: bool = False, channel_scale: float = 1.0):
        super().__init__()
        if not 0.0 < channel_scale <= 1.0:
            raise ValueError(f"discriminator channel_scale must be in (0, 1], got {channel_scale}")
        discs: list[nn.Module] = [DiscriminatorS(use_spectral_norm, channel_scale)]
        discs += [DiscriminatorP(p, use_spectral_norm=use_spectral_norm, channel_scale=channel_scale) for p in PERIODS]
        self.discriminators = nn.ModuleList(discs)

    def forward(self, y: torch.Tensor, y_hat: torch.Tensor):
        y_d_rs, y_d_gs, fmap_rs, fmap_gs = [], [], [], []
        for disc in self.discriminators:
            y_d_r, fmap_r = disc(y)
            y_d_g, fmap_g = disc(y_hat)
            y_d_rs.append(y_d_r)
            y_d_gs.append(y_d_g)
            fmap_rs.append(fmap_r)
            fmap_gs.append(fmap_g)
        return y_d_rs, y_d_gs, fmap_rs, fmap_gs


__all__ = ["DiscriminatorP", "DiscriminatorS", "MultiPeriodDiscriminator"]
