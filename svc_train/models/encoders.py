"""The prior (content) encoder and the posterior (spectrogram) encoder of SynthesizerTrn."""

from __future__ import annotations

import torch
from torch import nn

from svc_train.models import attentions
from svc_train.models.modules import WN, sequence_mask


class TextEncoder(nn.Module):
    """Prior encoder `enc_p`: content features + coarse pitch -> prior mean/log-std and a sample.

    x: [B, hidden, T] (already projected units + voicing [+ volume] embeddings),
    x_mask: [B, 1, T], f0_coarse: [B, T] int64 bins in [0, 255], noise: [B, inter, T]
    standard normal or None (drawn). Returns z_p, m_p, logs_p ([B, inter, T]) and x_mask;
    z_p = (m_p + noise * exp(logs_p) * noise_scale) * x_mask.
    """

    def __init__(self, out_channels: int, hidden_channels: int, kernel_size: int, n_layers: int,
                 filter_channels: int, n_heads: int, p_dropout: float):
        super().__init__()
        self.out_channels = out_channels
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)
        self.f0_emb = nn.Embedding(256, hidden_channels)
        self.enc_ = attentions.Encoder(hidden_channels, filter_channels, n_heads, n_layers, kernel_size, p_dropout)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, f0_coarse: torch.Tensor,
                noise_scale: float = 1.0, noise: torch.Tensor | None = None):
        x = x + self.f0_emb(f0_coarse).transpose(1, 2)
        x = self.enc_(x * x_mask, x_mask)
        stats = self.proj(x) * x_mask
        m, logs = torch.split(stats, self.out_channels, dim=1)
        if noise is None:
            noise = torch.randn_like(m)
        z = (m + noise * torch.exp(logs) * noise_scale) * x_mask
        return z, m, logs, x_mask


class PosteriorEncoder(nn.Module):
    """Posterior encoder `enc_q` (training only): linear spectrogram -> z ~ q(z | spec, speaker).

    x: [B, spec_channels, T], x_lengths: [B] frames, g: [B, gin, 1].
    Returns z, m, logs ([B, out, T]) and x_mask [B, 1, T].
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int, kernel_size: int,
                 dilation_rate: int, n_layers: int, gin_channels: int = 0, depthwise: bool = False):
        super().__init__()
        self.out_channels = out_channels
        self.pre = nn.Conv1d(in_channels, hidden_channels, 1)
        self.enc = WN(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels=gin_channels,
                      depthwise=depthwise)
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)

    def forward(self, x: torch.Tensor, x_lengths: torch.Tensor, g: torch.Tensor | None = None):
        x_mask = sequence_mask(x_lengths, x.size(2)).unsqueeze(1).to(x.dtype)
        x = self.pre(x) * x_mask
        x = self.enc(x, x_mask, g=g)
        stats = self.proj(x) * x_mask
        m, logs = torch.split(stats, self.out_channels, dim=1)
        z = (m + torch.randn_like(m) * torch.exp(logs)) * x_mask
        return z, m, logs, x_mask
