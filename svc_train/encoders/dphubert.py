"""DPHuBERT (``dphubert``): the structurally pruned, distilled HuBERT Base that so-vits-svc uses.

The checkpoint (pyf98/DPHuBERT ``DPHuBERT-sp0.75.pth``) is ``{'config': dict,
'state_dict': dict}`` in torchaudio's ``wav2vec2_model`` layout; the config gives the
pruned sizes: conv channels per layer (``extractor_conv_layer_config``), attention
heads and feed-forward width per transformer layer (``encoder_num_heads``,
``encoder_ff_interm_features``), and whole attention / feed-forward blocks removed
(``encoder_use_attention`` / ``encoder_use_feed_forward``). A learned per-channel
scale (``feature_extractor.dummy_weight``) multiplies the conv features.

As so-vits-svc's ``vencoder/DPHubert.py``, the units are the transformer's final
output (all layers), [B, 768, frames]; the waveform is layer-normalised first only
when the config's ``normalize_waveform`` says so (False for DPHuBERT).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from svc_runtime.vocabulary import ENCODER_SAMPLE_RATE
from svc_train.encoders.hubert import (
    ConvFeatureExtractor,
    FeatureProjection,
    HubertConfig,
    PositionalConv,
)
from svc_train.encoders.layouts import (
    CheckpointLayoutError,
    fold_weight_norm,
    rename_keys,
)
from svc_train.safe_pickle import load_checkpoint

__all__ = ["DPHubertConfig", "DPHubertEncoder", "dphubert_config", "dphubert_state", "load_dphubert"]

_MODES = {"group_norm": "default", "layer_norm": "layer_norm"}


@dataclass(frozen=True)
class DPHubertConfig:
    """Pruned HuBERT sizes (torchaudio ``wav2vec2_model`` argument names in brackets).

    conv_layers [extractor_conv_layer_config]: (channels, kernel, stride) per conv;
    extractor_mode: "default" (GroupNorm after conv 0) or "layer_norm";
    num_heads [encoder_num_heads], ffn_dims [encoder_ff_interm_features],
    use_attention / use_feed_forward: per transformer layer;
    head_dim [encoder_head_dim]; layer_norm_first [encoder_layer_norm_first];
    normalize_waveform: layer-normalise each waveform first.
    """

    conv_layers: tuple[tuple[int, int, int], ...]
    extractor_mode: str
    conv_bias: bool
    embed_dim: int
    conv_pos: int
    conv_pos_groups: int
    num_heads: tuple[int, ...]
    head_dim: int
    ffn_dims: tuple[int, ...]
    use_attention: tuple[bool, ...]
    use_feed_forward: tuple[bool, ...]
    layer_norm_first: bool
    normalize_waveform: bool = False

    def __post_init__(self) -> None:
        n = len(self.num_heads)
        if not (len(self.ffn_dims) == len(self.use_attention) == len(self.use_feed_forward) == n):
            raise ValueError(
                f"per-layer lists differ in length: num_heads {n}, ff_interm_features {len(self.ffn_dims)}, "
                f"use_attention {len(self.use_attention)}, use_feed_forward {len(self.use_feed_forward)}"
            )
        for index in range(n):
            if self.use_attention[index] and self.num_heads[index] <= 0:
                raise ValueError(f"layer {index} uses attention with {self.num_heads[index]} heads")
            if self.use_feed_forward[index] and self.ffn_dims[index] <= 0:
                raise ValueError(f"layer {index} uses a feed-forward block of width {self.ffn_dims[index]}")

    @property
    def num_layers(self) -> int:
        return len(self.num_heads)

    def body_config(self) -> HubertConfig:
        """The parts shared with HuBERT (conv stack, projection, positional conv) as a `HubertConfig`."""
        return HubertConfig(
            conv_layers=self.conv_layers, extractor_mode=self.extractor_mode, conv_bias=self.conv_bias,
            embed_dim=self.embed_dim, ffn_dim=1, num_layers=0, num_heads=1, layer_norm_first=self.layer_norm_first,
            conv_pos=self.conv_pos, conv_pos_groups=self.conv_pos_groups,
        )


class PrunedAttention(nn.Module):
    """Self-attention with ``num_heads`` heads of ``head_dim`` (need not fill embed_dim). x: [B, T, D] -> [B, T, D]."""

    def __init__(self, embed_dim: int, num_heads: int, head_dim: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim
        inner = num_heads * head_dim
        self.q_proj = nn.Linear(embed_dim, inner)
        self.k_proj = nn.Linear(embed_dim, inner)
        self.v_proj = nn.Linear(embed_dim, inner)
        self.out_proj = nn.Linear(inner, embed_dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, frames = x.shape[0], x.shape[1]
        q = self._heads(self.q_proj(x) * self.head_dim**-0.5)
        weights = torch.softmax(q @ self._heads(self.k_proj(x)).transpose(-1, -2), dim=-1)
        out = (weights @ self._heads(self.v_proj(x))).transpose(1, 2)
        return self.out_proj(out.reshape(batch, frames, self.num_heads * self.head_dim))


class PrunedFeedForward(nn.Module):
    """output_dense(gelu(intermediate_dense(x))). x: [B, T, D] -> [B, T, D]."""

    def __init__(self, embed_dim: int, ffn_dim: int) -> None:
        super().__init__()
        self.intermediate_dense = nn.Linear(embed_dim, ffn_dim)
        self.output_dense = nn.Linear(ffn_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_dense(F.gelu(self.intermediate_dense(x)))


class PrunedLayer(nn.Module):
    """One transformer layer whose attention and / or feed-forward block may be gone.

    Post-LN: x = layer_norm(x + attn(x)); x = final_layer_norm(x + ff(x)) (both norms stay
    when a block is removed). Pre-LN: x += attn(layer_norm(x)); x += ff(final_layer_norm(x)).
    """

    def __init__(self, config: DPHubertConfig, index: int) -> None:
        super().__init__()
        dim = config.embed_dim
        self.layer_norm_first = config.layer_norm_first
        self.attention = (
            PrunedAttention(dim, config.num_heads[index], config.head_dim) if config.use_attention[index] else None
        )
        self.feed_forward = PrunedFeedForward(dim, config.ffn_dims[index]) if config.use_feed_forward[index] else None
        self.layer_norm = nn.LayerNorm(dim)
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.attention is not None:
            x = x + self.attention(self.layer_norm(x) if self.layer_norm_first else x)
        if self.layer_norm_first:
            return x if self.feed_forward is None else x + self.feed_forward(self.final_layer_norm(x))
        x = self.layer_norm(x)
        if self.feed_forward is not None:
            x = x + self.feed_forward(x)
        return self.final_layer_norm(x)


class DPHubertEncoder(nn.Module):
    """so-vits-svc's DPHuBERT. wav [B, N] float32 16 kHz -> units [B, embed_dim, frames] (frames ~ N / 320)."""

    sample_rate = ENCODER_SAMPLE_RATE

    def __init__(self, name: str, config: DPHubertConfig) -> None:
        super().__init__()
        body = config.body_config()
        self.name = name
        self.config = config
        self.feature_extractor = ConvFeatureExtractor(body)
        self.dummy_weight = nn.Parameter(torch.ones(config.conv_layers[-1][0]), requires_grad=False)
        self.feature_projection = FeatureProjection(body)
        self.pos_conv = PositionalConv(body)
        self.layer_norm = nn.LayerNorm(config.embed_dim)
        self.layers = nn.ModuleList(PrunedLayer(config, i) for i in range(config.num_layers))
        self.dim = config.embed_dim
        self.hop_size = body.hop_size
        self._body = body
        need = 1
        for _, kernel, stride in reversed(config.conv_layers):
            need = (need - 1) * stride + kernel
        self.min_samples = need

    def num_frames(self, num_samples: int) -> int:
        """Unit frames for ``num_samples`` input samples ((N - 80) // 320 for the wav2vec 2.0 conv stack)."""
        return self._body.num_frames(num_samples)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """wav: [B, N] -> [B, dim, frames]."""
        if wav.dim() != 2:
            raise ValueError(f"wav must be [batch, samples], got shape {tuple(wav.shape)}")
        if not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export() and wav.shape[-1] < self.min_samples:
            raise ValueError(f"wav has {wav.shape[-1]} samples; {self.name} needs at least {self.min_samples}")
        if self.config.normalize_waveform:
            wav = F.layer_norm(wav, wav.shape[-1:])
        x = self.feature_extractor(wav).transpose(1, 2) * self.dummy_weight
        x = self.feature_projection(x)
        x = x + self.pos_conv(x)
        if not self.config.layer_norm_first:
            x = self.layer_norm(x)
        for layer in self.layers:
            x = layer(x)
        if self.config.layer_norm_first:
            x = self.layer_norm(x)
        return x.transpose(1, 2)


# ---------------------------------------------------------------- checkpoint

_RULES = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.conv\.(weight|bias)$", r"feature_extractor.conv_layers.\1.conv.\2"),
    (r"^feature_extractor\.conv_layers\.(\d+)\.layer_norm\.(weight|bias)$", r"feature_extractor.conv_layers.\1.norm.\2"),
    (r"^feature_extractor\.dummy_weight$", "dummy_weight"),
    (r"^encoder\.feature_projection\.(layer_norm|projection)\.(weight|bias)$", r"feature_projection.\1.\2"),
    (r"^encoder\.transformer\.pos_conv_embed\.conv\.(.+)$", r"pos_conv.conv.\1"),
    (r"^encoder\.transformer\.layer_norm\.(weight|bias)$", r"layer_norm.\1"),
    (r"^encoder\.transformer\.layers\.(\d+)\.attention\.([qkv]|out)_proj\.(weight|bias)$",
     r"layers.\1.attention.\2_proj.\3"),
    (r"^encoder\.transformer\.layers\.(\d+)\.(layer_norm|final_layer_norm)\.(weight|bias)$", r"layers.\1.\2.\3"),
    (r"^encoder\.transformer\.layers\.(\d+)\.feed_forward\.(intermediate_dense|output_dense)\.(weight|bias)$",
     r"layers.\1.feed_forward.\2.\3"),
]
_UNUSED = re.compile(r"^aux\..*$")  # a fine-tuning head, not part of the units
_PRUNE_FLAGS = (
    "extractor_prune_conv_channels", "encoder_prune_attention_heads", "encoder_prune_attention_layer",
    "encoder_prune_feed_forward_intermediate", "encoder_prune_feed_forward_layer",
)


def _int_list(value: Any, field: str, length: int | None = None) -> tuple[int, ...]:
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise CheckpointLayoutError(f"DPHuBERT config: {field} must be a list, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise CheckpointLayoutError(f"DPHuBERT config: {field} has {len(value)} entries, expected {length}")
    return tuple(int(v) for v in value)


def dphubert_config(config: Mapping[str, Any]) -> DPHubertConfig:
    """torchaudio-style ``wav2vec2_model`` kwargs (the checkpoint's ``config``) -> `DPHubertConfig`."""
    if "encoder_remaining_heads" in config:
        raise CheckpointLayoutError("a pruned WavLM (DPWavLM) checkpoint; dphubert needs the pruned HuBERT")
    raised = [flag for flag in _PRUNE_FLAGS if config.get(flag)]
    if raised:
        raise CheckpointLayoutError(
            f"an unpruned DPHuBERT training checkpoint ({', '.join(raised)} set); run DPHuBERT's prune.py first"
        )
    try:
        mode = _MODES.get(str(config["extractor_mode"]))
        if mode is None:
            raise CheckpointLayoutError(f"extractor_mode={config['extractor_mode']!r}: expected group_norm or layer_norm")
        layers = config.get("extractor_conv_layer_config") or [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
        conv_layers = tuple(_int_list(layer, "extractor_conv_layer_config", 3) for layer in layers)
        num_layers = int(config["encoder_num_layers"])
        return DPHubertConfig(
            conv_layers=conv_layers,
            extractor_mode=mode,
            conv_bias=bool(config["extractor_conv_bias"]),
            embed_dim=int(config["encoder_embed_dim"]),
            conv_pos=int(config["encoder_pos_conv_kernel"]),
            conv_pos_groups=int(config["encoder_pos_conv_groups"]),
            num_heads=_int_list(config["encoder_num_heads"], "encoder_num_heads", num_layers),
            head_dim=int(config["encoder_head_dim"]),
            ffn_dims=_int_list(config["encoder_ff_interm_features"], "encoder_ff_interm_features", num_layers),
            use_attention=tuple(bool(v) for v in config["encoder_use_attention"]),
            use_feed_forward=tuple(bool(v) for v in config["encoder_use_feed_forward"]),
            layer_norm_first=bool(config["encoder_layer_norm_first"]),
            normalize_waveform=bool(config.get("normalize_waveform", False)),
        )
    except KeyError as error:
        raise CheckpointLayoutError(f"DPHuBERT config lacks {error.args[0]!r}") from error
    except (TypeError, ValueError) as error:
        raise CheckpointLayoutError(f"DPHuBERT config: {error}") from error


def dphubert_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DPHuBERT (torchaudio names) state dict -> `DPHubertEncoder` keys, positional-conv weight norm folded."""
    if any("hard_concrete" in key for key in state):
        raise CheckpointLayoutError("the state dict holds pruning masks (hard_concrete); run DPHuBERT's prune.py first")
    renamed = rename_keys(state, _RULES, _UNUSED, "DPHuBERT encoder")
    return fold_weight_norm(renamed, "pos_conv.conv.")


def build_dphubert(name: str, config: DPHubertConfig, state: Mapping[str, torch.Tensor], source: str) -> DPHubertEncoder:
    """`DPHubertEncoder` with ``state`` loaded strictly; errors name ``source``."""
    model = DPHubertEncoder(name, config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointLayoutError(
            f"{source}: DPHuBERT weights do not match its config (missing: {', '.join(missing[:6]) or '-'}; "
            f"unexpected: {', '.join(unexpected[:6]) or '-'})"
        )
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointLayoutError(
                f"{source}: {key} has shape {tuple(state[key].shape)}, the config implies {tuple(tensor.shape)}"
            )
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
    return model.eval()


def load_dphubert(path: Path, name: str = "dphubert") -> DPHubertEncoder:
    """DPHuBERT from a ``{'config', 'state_dict'}`` checkpoint (``DPHuBERT-sp0.75.pth``); eval mode."""
    checkpoint = load_checkpoint(path)
    if (
        not isinstance(checkpoint, Mapping)
        or not isinstance(checkpoint.get("config"), Mapping)
        or not isinstance(checkpoint.get("state_dict"), Mapping)
    ):
        raise CheckpointLayoutError(f"{path}: not a DPHuBERT checkpoint (expected {{'config': dict, 'state_dict': dict}})")
    try:
        config = dphubert_config(checkpoint["config"])
    except CheckpointLayoutError as error:
        raise CheckpointLayoutError(f"{path}: {error}") from None
    return build_dphubert(name, config, dphubert_state(checkpoint["state_dict"]), str(path))
