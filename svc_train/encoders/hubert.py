"""HuBERT / ContentVec network (fairseq ``HubertModel`` semantics, inference only).

Written to export cleanly to ONNX with a dynamic sample axis: plain convs, explicit
attention, the positional conv's weight norm folded into a plain weight at load.
Parameter names are this module's own (canonical); `layouts.py` maps fairseq,
Hugging Face and hubert-soft checkpoints onto them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["HubertConfig", "HubertEncoder"]

EXTRACTOR_MODES = ("default", "layer_norm")


@dataclass(frozen=True)
class HubertConfig:
    """Sizes and structure of a HuBERT-family encoder.

    conv_layers: (channels, kernel, stride) per feature-extractor conv.
    extractor_mode: "default" = GroupNorm(channels, channels) after conv 0 only;
        "layer_norm" = LayerNorm over channels after every conv.
    layer_norm_first: pre-LN transformer (fairseq ``layer_norm_first``, HF
        ``do_stable_layer_norm``); False = post-LN.
    feature_layer_norm: LayerNorm on the conv features before the projection.
    feature_projection: Linear(conv channels -> embed_dim) present.
    final_proj_dim: output size of ``final_proj``; 0 = none.
    """

    conv_layers: tuple[tuple[int, int, int], ...]
    extractor_mode: str
    conv_bias: bool
    embed_dim: int
    ffn_dim: int
    num_layers: int
    num_heads: int
    layer_norm_first: bool
    conv_pos: int
    conv_pos_groups: int
    feature_layer_norm: bool = True
    feature_projection: bool = True
    final_proj_dim: int = 0
    eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.extractor_mode not in EXTRACTOR_MODES:
            raise ValueError(f"extractor_mode must be one of {EXTRACTOR_MODES}, got {self.extractor_mode!r}")
        if not self.conv_layers:
            raise ValueError("conv_layers is empty")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.embed_dim % self.conv_pos_groups:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by conv_pos_groups {self.conv_pos_groups}")
        if not self.feature_projection and self.conv_layers[-1][0] != self.embed_dim:
            raise ValueError(
                f"no feature projection but conv channels {self.conv_layers[-1][0]} != embed_dim {self.embed_dim}"
            )

    @property
    def hop_size(self) -> int:
        """Samples per output frame (product of the conv strides)."""
        return math.prod(stride for _, _, stride in self.conv_layers)

    def num_frames(self, num_samples: int) -> int:
        """Frames the conv stack yields for ``num_samples`` input samples (0 if too short)."""
        n = num_samples
        for _, kernel, stride in self.conv_layers:
            n = (n - kernel) // stride + 1
            if n <= 0:
                return 0
        return n


class ConvLayer(nn.Module):
    """Conv1d -> optional norm -> GELU. x: [B, C_in, T] -> [B, C_out, T']."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, bias: bool, norm: str | None, eps: float):
        super().__init__()
        self.conv = nn.Conv1d(in_ch, out_ch, kernel, stride, bias=bias)
        self.norm_kind = norm
        if norm == "group":
            self.norm = nn.GroupNorm(out_ch, out_ch, eps=eps)
        elif norm == "layer":
            self.norm = nn.LayerNorm(out_ch, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm_kind == "group":
            # GroupNorm(C, C): each channel normalised over time. Written out so that
            # tracing records no batch-size check (F.group_norm's _verify_batch_size).
            mean = x.mean(dim=-1, keepdim=True)
            centered = x - mean
            var = centered.pow(2).mean(dim=-1, keepdim=True)
            x = centered * torch.rsqrt(var + self.norm.eps) * self.norm.weight[:, None] + self.norm.bias[:, None]
        elif self.norm_kind == "layer":
            x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        return F.gelu(x)


class ConvFeatureExtractor(nn.Module):
    """Waveform [B, N] -> conv features [B, C, frames]."""

    def __init__(self, config: HubertConfig):
        super().__init__()
        layers = []
        in_ch = 1
        for index, (channels, kernel, stride) in enumerate(config.conv_layers):
            if config.extractor_mode == "layer_norm":
                norm = "layer"
            else:
                norm = "group" if index == 0 else None
            layers.append(ConvLayer(in_ch, channels, kernel, stride, config.conv_bias, norm, config.eps))
            in_ch = channels
        self.conv_layers = nn.ModuleList(layers)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = wav.unsqueeze(1)
        for layer in self.conv_layers:
            x = layer(x)
        return x


class FeatureProjection(nn.Module):
    """Conv features [B, T, C] -> encoder input [B, T, D] (LayerNorm, Linear)."""

    def __init__(self, config: HubertConfig):
        super().__init__()
        channels = config.conv_layers[-1][0]
        self.layer_norm = nn.LayerNorm(channels, eps=config.eps) if config.feature_layer_norm else None
        self.projection = nn.Linear(channels, config.embed_dim) if config.feature_projection else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        if self.projection is not None:
            x = self.projection(x)
        return x


class PositionalConv(nn.Module):
    """Grouped conv over time, last frame dropped when the kernel is even, GELU.

    x: [B, T, D] -> [B, T, D]. ``conv.weight`` is the weight-norm product g*v/||v||.
    """

    def __init__(self, config: HubertConfig):
        super().__init__()
        self.conv = nn.Conv1d(
            config.embed_dim,
            config.embed_dim,
            config.conv_pos,
            padding=config.conv_pos // 2,
            groups=config.conv_pos_groups,
        )
        self.trim = 1 if config.conv_pos % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.transpose(1, 2))
        if self.trim:
            y = y[:, :, : -self.trim]
        return F.gelu(y).transpose(1, 2)


class SelfAttention(nn.Module):
    """Multi-head self-attention, no mask. x: [B, T, D] -> [B, T, D]."""

    def __init__(self, embed_dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.scaling = self.head_dim**-0.5
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, frames = x.shape[0], x.shape[1]
        return x.reshape(batch, frames, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, frames = x.shape[0], x.shape[1]
        q = self._heads(self.q_proj(x) * self.scaling)
        k = self._heads(self.k_proj(x))
        v = self._heads(self.v_proj(x))
        weights = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(batch, frames, self.num_heads * self.head_dim)
        return self.out_proj(out)


class FeedForward(nn.Module):
    """fc2(gelu(fc1(x))). x: [B, T, D] -> [B, T, D]."""

    def __init__(self, embed_dim: int, ffn_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(embed_dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class TransformerLayer(nn.Module):
    """Post-LN: x = LN1(x + attn(x)); x = LN2(x + ff(x)). Pre-LN: x += attn(LN1(x)); x += ff(LN2(x))."""

    def __init__(self, config: HubertConfig):
        super().__init__()
        self.layer_norm_first = config.layer_norm_first
        self.attention = SelfAttention(config.embed_dim, config.num_heads)
        self.attention_norm = nn.LayerNorm(config.embed_dim, eps=config.eps)
        self.feed_forward = FeedForward(config.embed_dim, config.ffn_dim)
        self.final_layer_norm = nn.LayerNorm(config.embed_dim, eps=config.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer_norm_first:
            x = x + self.attention(self.attention_norm(x))
            return x + self.feed_forward(self.final_layer_norm(x))
        x = self.attention_norm(x + self.attention(x))
        return self.final_layer_norm(x + self.feed_forward(x))


class TransformerEncoder(nn.Module):
    """Positional conv + LayerNorm + transformer layers, fairseq ``TransformerEncoder`` order."""

    def __init__(self, config: HubertConfig):
        super().__init__()
        self.layer_norm_first = config.layer_norm_first
        self.pos_conv = PositionalConv(config)
        self.layer_norm = nn.LayerNorm(config.embed_dim, eps=config.eps)
        self.layers = nn.ModuleList(TransformerLayer(config) for _ in range(config.num_layers))

    def forward(self, x: torch.Tensor, output_layer: int | None = None) -> list[torch.Tensor]:
        """x: [B, T, D] encoder input.

        Returns the hidden states [B, T, D] up to ``output_layer`` (1-based; None =
        all): entry 0 is the input to block 1, entry i the output of block i. For a
        pre-LN model with ``output_layer=None`` the last entry gets the final
        LayerNorm (fairseq applies it only then).
        """
        x = x + self.pos_conv(x)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        states = [x]
        stop = len(self.layers) if output_layer is None else output_layer
        for layer in self.layers[:stop]:
            x = layer(x)
            states.append(x)
        if self.layer_norm_first and output_layer is None:
            states[-1] = self.layer_norm(states[-1])
        return states


class HubertEncoder(nn.Module):
    """HuBERT/ContentVec body. wav: [B, N] float32 16 kHz -> hidden states.

    `forward` returns the output of block ``output_layer`` (1-based, fairseq
    ``extract_features(output_layer=...)``), time-major [B, frames, embed_dim];
    `project` applies ``final_proj``.
    """

    def __init__(self, config: HubertConfig):
        super().__init__()
        self.config = config
        self.feature_extractor = ConvFeatureExtractor(config)
        self.feature_projection = FeatureProjection(config)
        self.encoder = TransformerEncoder(config)
        self.final_proj = nn.Linear(config.embed_dim, config.final_proj_dim) if config.final_proj_dim else None

    def conv_features(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [B, N] -> conv features [B, frames, C] (before the feature LayerNorm)."""
        return self.feature_extractor(wav).transpose(1, 2)

    def hidden_states(self, wav: torch.Tensor, output_layer: int | None = None) -> list[torch.Tensor]:
        """wav [B, N] -> hidden states [B, frames, D] per layer (see `TransformerEncoder.forward`)."""
        self._check_layer(output_layer)
        features = self.feature_projection(self.conv_features(wav))
        return self.encoder(features, output_layer)

    def forward(self, wav: torch.Tensor, output_layer: int | None = None) -> torch.Tensor:
        """wav [B, N] -> [B, frames, D] output of block ``output_layer`` (None = last)."""
        return self.hidden_states(wav, output_layer)[-1]

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [B, T, D] -> final_proj(hidden) [B, T, final_proj_dim]."""
        if self.final_proj is None:
            raise ValueError("this checkpoint has no final_proj")
        return self.final_proj(hidden)

    def _check_layer(self, output_layer: int | None) -> None:
        if output_layer is not None and not 1 <= output_layer <= self.config.num_layers:
            raise ValueError(f"output_layer must be in 1..{self.config.num_layers}, got {output_layer}")
