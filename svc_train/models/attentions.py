"""Transformer stacks of so-vits-svc 4.1: the relative-position encoder and the causal FFT block.

All tensors are channels-first: x [B, C, T], masks [B, 1, T].
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from svc_train.models.modules import LayerNorm, apply_weight_norm, gated_activation

MASKED_SCORE = -1e4
"""Score given to masked attention positions (the reference's value, not -inf)."""


class MultiHeadAttention(nn.Module):
    """Multi-head attention with optional windowed relative-position embeddings (VITS).

    x: [B, C, T_q] queries, c: [B, C, T_k] keys/values, attn_mask: broadcastable to
    [B, heads, T_q, T_k] (0 = masked) -> [B, out_channels, T_q].
    """

    def __init__(
        self,
        channels: int,
        out_channels: int,
        n_heads: int,
        p_dropout: float = 0.0,
        window_size: int | None = None,
        proximal_init: bool = False,
    ):
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"channels ({channels}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.k_channels = channels // n_heads
        self.window_size = window_size
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, out_channels, 1)
        self.drop = nn.Dropout(p_dropout)
        if window_size is not None:
            # Heads share one table of 2*window+1 relative embeddings.
            std = self.k_channels**-0.5
            self.emb_rel_k = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
            self.emb_rel_v = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
        nn.init.xavier_uniform_(self.conv_q.weight)
        nn.init.xavier_uniform_(self.conv_k.weight)
        nn.init.xavier_uniform_(self.conv_v.weight)
        if proximal_init:
            with torch.no_grad():
                self.conv_k.weight.copy_(self.conv_q.weight)
                self.conv_k.bias.copy_(self.conv_q.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self.conv_q(x), self.conv_k(c), self.conv_v(c)
        return self.conv_o(self._attend(q, k, v, attn_mask))

    def _attend(self, query, key, value, mask):
        b, d, t_k = key.shape
        t_q = query.size(2)
        heads, kc = self.n_heads, self.k_channels
        query = query.view(b, heads, kc, t_q).transpose(2, 3)
        key = key.view(b, heads, kc, t_k).transpose(2, 3)
        value = value.view(b, heads, kc, t_k).transpose(2, 3)

        query = query / math.sqrt(kc)
        scores = torch.matmul(query, key.transpose(-2, -1))
        if self.window_size is not None:
            if t_q != t_k:
                raise ValueError("relative attention needs self-attention (equal query and key lengths)")
            rel_k = self._relative_embeddings(self.emb_rel_k, t_k)
            rel_logits = torch.matmul(query, rel_k.unsqueeze(0).transpose(-2, -1))
            scores = scores + _relative_to_absolute(rel_logits)
        if mask is not None:
            scores = scores.masked_fill(mask == 0, MASKED_SCORE)
        p_attn = self.drop(F.softmax(scores, dim=-1))
        output = torch.matmul(p_attn, value)
        if self.window_size is not None:
            rel_v = self._relative_embeddings(self.emb_rel_v, t_k)
            output = output + torch.matmul(_absolute_to_relative(p_attn), rel_v.unsqueeze(0))
        return output.transpose(2, 3).contiguous().view(b, d, t_q)

    def _relative_embeddings(self, table: torch.Tensor, length: int) -> torch.Tensor:
        """The 2*length-1 embeddings for offsets -(length-1) .. length-1 (zeros beyond the window)."""
        window = self.window_size
        pad = max(length - (window + 1), 0)
        start = max((window + 1) - length, 0)
        if pad > 0:
            table = F.pad(table, (0, 0, pad, pad))
        return table[:, start:start + 2 * length - 1]


def _relative_to_absolute(x: torch.Tensor) -> torch.Tensor:
    """[b, h, l, 2l-1] logits by relative offset -> [b, h, l, l] by absolute key position."""
    b, h, length, _ = x.shape
    x = F.pad(x, (0, 1))
    flat = F.pad(x.reshape(b, h, length * 2 * length), (0, length - 1))
    return flat.view(b, h, length + 1, 2 * length - 1)[:, :, :length, length - 1:]


def _absolute_to_relative(x: torch.Tensor) -> torch.Tensor:
    """[b, h, l, l] weights by absolute key position -> [b, h, l, 2l-1] by relative offset."""
    b, h, length, _ = x.shape
    x = F.pad(x, (0, length - 1))
    flat = F.pad(x.reshape(b, h, length * length + length * (length - 1)), (length, 0))
    return flat.view(b, h, length, 2 * length)[:, :, :, 1:]


class FFN(nn.Module):
    """Two convolutions with ReLU; 'same' padding, or left-only padding when causal."""

    def __init__(self, in_channels: int, out_channels: int, filter_channels: int, kernel_size: int,
                 p_dropout: float = 0.0, causal: bool = False):
        super().__init__()
        self.kernel_size = kernel_size
        self.causal = causal
        self.conv_1 = nn.Conv1d(in_channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, out_channels, kernel_size)
        self.drop = nn.Dropout(p_dropout)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        if k == 1:
            return x
        return F.pad(x, (k - 1, 0) if self.causal else ((k - 1) // 2, k // 2))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv_1(self._pad(x * x_mask)))
        x = self.conv_2(self._pad(self.drop(x) * x_mask))
        return x * x_mask


class Encoder(nn.Module):
    """Post-norm transformer encoder with relative-position self-attention (window 4)."""

    def __init__(self, hidden_channels: int, filter_channels: int, n_heads: int, n_layers: int,
                 kernel_size: int = 1, p_dropout: float = 0.0, window_size: int = 4):
        super().__init__()
        self.n_layers = n_layers
        self.drop = nn.Dropout(p_dropout)
        self.attn_layers = nn.ModuleList()
        self.norm_layers_1 = nn.ModuleList()
        self.ffn_layers = nn.ModuleList()
        self.norm_layers_2 = nn.ModuleList()
        for _ in range(n_layers):
            self.attn_layers.append(MultiHeadAttention(hidden_channels, hidden_channels, n_heads,
                                                       p_dropout=p_dropout, window_size=window_size))
            self.norm_layers_1.append(LayerNorm(hidden_channels))
            self.ffn_layers.append(FFN(hidden_channels, hidden_channels, filter_channels, kernel_size,
                                       p_dropout=p_dropout))
            self.norm_layers_2.append(LayerNorm(hidden_channels))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        attn_mask = x_mask.unsqueeze(2) * x_mask.unsqueeze(-1)
        x = x * x_mask
        for i in range(self.n_layers):
            x = self.norm_layers_1[i](x + self.drop(self.attn_layers[i](x, x, attn_mask)))
            x = self.norm_layers_2[i](x + self.drop(self.ffn_layers[i](x, x_mask)))
        return x * x_mask


class FFT(nn.Module):
    """Causal transformer block ("FFT") used by the F0 decoder and the transformer flow.

    Self-attention sees only the past (lower-triangular mask); the FFN pads on the left.
    With `gin_channels` (the flow's form) every layer first gates its input with a
    per-layer slice of the speaker condition: x = gate(cond_pre(x) + cond_layer(g)).
    """

    def __init__(self, hidden_channels: int, filter_channels: int, n_heads: int, n_layers: int = 1,
                 kernel_size: int = 1, p_dropout: float = 0.0, gin_channels: int | None = None):
        super().__init__()
        self.hidden_channels = hidden_channels
        self.n_layers = n_layers
        if gin_channels is not None:
            self.cond_pre = nn.Conv1d(hidden_channels, 2 * hidden_channels, 1)
            self.cond_layer = apply_weight_norm(nn.Conv1d(gin_channels, 2 * hidden_channels * n_layers, 1))
        self.drop = nn.Dropout(p_dropout)
        self.self_attn_layers = nn.ModuleList()
        self.norm_layers_0 = nn.ModuleList()
        self.ffn_layers = nn.ModuleList()
        self.norm_layers_1 = nn.ModuleList()
        for _ in range(n_layers):
            self.self_attn_layers.append(MultiHeadAttention(hidden_channels, hidden_channels, n_heads,
                                                            p_dropout=p_dropout, proximal_init=True))
            self.norm_layers_0.append(LayerNorm(hidden_channels))
            self.ffn_layers.append(FFN(hidden_channels, hidden_channels, filter_channels, kernel_size,
                                       p_dropout=p_dropout, causal=True))
            self.norm_layers_1.append(LayerNorm(hidden_channels))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        if g is not None:
            g = self.cond_layer(g)
        length = x_mask.size(2)
        causal_mask = torch.tril(torch.ones(length, length, device=x.device, dtype=x.dtype))[None, None]
        hidden = self.hidden_channels
        x = x * x_mask
        for i in range(self.n_layers):
            if g is not None:
                cond = g[:, i * 2 * hidden:(i + 1) * 2 * hidden, :]
                x = gated_activation(self.cond_pre(x), cond, hidden)
            x = self.norm_layers_0[i](x + self.drop(self.self_attn_layers[i](x, x, causal_mask)))
            x = self.norm_layers_1[i](x + self.drop(self.ffn_layers[i](x, x_mask)))
        return x * x_mask
