"""The normalising flow between the posterior latent z and the prior latent z_p.

Two families, as in so-vits-svc 4.1: WaveNet coupling (`ResidualCouplingBlock`) and
causal-transformer coupling (`TransformerCouplingBlock`, `use_transformer_flow`). With
`share_parameter` every coupling layer uses one shared network, registered as `wn`
on the block; its parameters then appear in the state dict both as `flow.wn.*` and as
`flow.flows.<2i>.enc.*` (the same tensors).
"""

from __future__ import annotations

import torch
from torch import nn

from svc_train.models.attentions import FFT
from svc_train.models.modules import WN


class Flip(nn.Module):
    """Reverses the channel order so the next coupling layer transforms the other half."""

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None, reverse: bool = False):
        x = torch.flip(x, [1])
        if reverse:
            return x
        return x, torch.zeros(x.size(0), dtype=x.dtype, device=x.device)


class _MeanOnlyCoupling(nn.Module):
    """Affine coupling with unit scale: x1 <- x1 + m(x0) (forward) or x1 - m(x0) (reverse)."""

    def __init__(self, channels: int, hidden_channels: int, enc: nn.Module):
        super().__init__()
        if channels % 2:
            raise ValueError(f"flow channels must be even, got {channels}")
        self.half_channels = channels // 2
        self.pre = nn.Conv1d(self.half_channels, hidden_channels, 1)
        self.enc = enc
        self.post = nn.Conv1d(hidden_channels, self.half_channels, 1)
        self.post.weight.data.zero_()
        self.post.bias.data.zero_()

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None, reverse: bool = False):
        x0, x1 = torch.split(x, [self.half_channels] * 2, 1)
        h = self.pre(x0) * x_mask
        h = self.enc(h, x_mask, g=g)
        m = self.post(h) * x_mask
        logs = torch.zeros_like(m)
        if not reverse:
            x1 = m + x1 * torch.exp(logs) * x_mask
            return torch.cat([x0, x1], 1), torch.sum(logs, [1, 2])
        x1 = (x1 - m) * torch.exp(-logs) * x_mask
        return torch.cat([x0, x1], 1)


class ResidualCouplingLayer(_MeanOnlyCoupling):
    """Coupling layer whose shift network is a WaveNet stack (`enc`)."""

    def __init__(self, channels: int, hidden_channels: int, kernel_size: int, dilation_rate: int, n_layers: int,
                 gin_channels: int = 0, shared_enc: nn.Module | None = None, depthwise: bool = False):
        enc = shared_enc if shared_enc is not None else WN(
            hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels=gin_channels, depthwise=depthwise)
        super().__init__(channels, hidden_channels, enc)


class TransformerCouplingLayer(_MeanOnlyCoupling):
    """Coupling layer whose shift network is a speaker-gated causal transformer (`enc`)."""

    def __init__(self, channels: int, hidden_channels: int, kernel_size: int, n_layers: int, n_heads: int,
                 p_dropout: float, filter_channels: int, gin_channels: int = 0,
                 shared_enc: nn.Module | None = None):
        enc = shared_enc if shared_enc is not None else FFT(
            hidden_channels, filter_channels, n_heads, n_layers, kernel_size, p_dropout, gin_channels=gin_channels)
        super().__init__(channels, hidden_channels, enc)


class _CouplingBlock(nn.Module):
    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None, reverse: bool = False):
        """x: [B, C, T] -> [B, C, T]; forward maps z -> z_p, reverse maps z_p -> z."""
        if not reverse:
            for flow in self.flows:
                x, _ = flow(x, x_mask, g=g, reverse=False)
        else:
            for flow in reversed(self.flows):
                x = flow(x, x_mask, g=g, reverse=True)
        return x


class ResidualCouplingBlock(_CouplingBlock):
    def __init__(self, channels: int, hidden_channels: int, kernel_size: int, dilation_rate: int, n_layers: int,
                 n_flows: int = 4, gin_channels: int = 0, share_parameter: bool = False, depthwise: bool = False):
        super().__init__()
        self.flows = nn.ModuleList()
        self.wn = WN(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels=gin_channels,
                     depthwise=depthwise) if share_parameter else None
        for _ in range(n_flows):
            self.flows.append(ResidualCouplingLayer(channels, hidden_channels, kernel_size, dilation_rate, n_layers,
                                                    gin_channels=gin_channels, shared_enc=self.wn,
                                                    depthwise=depthwise))
            self.flows.append(Flip())


class TransformerCouplingBlock(_CouplingBlock):
    def __init__(self, channels: int, hidden_channels: int, filter_channels: int, n_heads: int, n_layers: int,
                 kernel_size: int, p_dropout: float, n_flows: int = 4, gin_channels: int = 0,
                 share_parameter: bool = False):
        super().__init__()
        self.flows = nn.ModuleList()
        self.wn = FFT(hidden_channels, filter_channels, n_heads, n_layers, kernel_size, p_dropout,
                      gin_channels=gin_channels) if share_parameter else None
        for _ in range(n_flows):
            self.flows.append(TransformerCouplingLayer(channels, hidden_channels, kernel_size, n_layers, n_heads,
                                                       p_dropout, filter_channels, gin_channels=gin_channels,
                                                       shared_enc=self.wn))
            self.flows.append(Flip())
