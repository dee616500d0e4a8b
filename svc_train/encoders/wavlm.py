"""WavLM Base+ (``wavlmbase+``) through transformers' ``WavLMModel``.

Two checkpoint forms load: the Hugging Face folder (``microsoft/wavlm-base-plus``)
and the original microsoft/unilm release that so-vits-svc uses
(``WavLM-Base+.pt``: ``{'cfg': dict, 'model': state_dict}``), whose keys are
renamed to transformers' names here. As in so-vits-svc, the waveform is
layer-normalised (per item, eps 1e-5) when the checkpoint's ``cfg.normalize`` is
set; the output is the last transformer layer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from svc_runtime.vocabulary import ENCODER_SAMPLE_RATE
from svc_train.encoders.layouts import (
    DEFAULT_CONV_FEATURE_LAYERS,
    CheckpointLayoutError,
    fairseq_field_getter,
    parse_conv_feature_layers,
    rename_keys,
    require_gelu,
    strip_prefix,
)
from svc_train.encoders.loading import HF_WEIGHT_FILES, read_hf_folder
from svc_train.safe_pickle import load_checkpoint

__all__ = ["WavLMContentEncoder", "load_wavlm", "wavlm_config_from_original", "wavlm_state_from_original"]

_HF_UNUSED = re.compile(r"^(lm_head\..*|projector\..*|classifier\..*|layer_weights|feature_extractor_head\..*)$")

_ORIGINAL_RULES = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)$", r"feature_extractor.conv_layers.\1.conv.\2"),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)$", r"feature_extractor.conv_layers.\1.layer_norm.\2"),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.(weight|bias)$", r"feature_extractor.conv_layers.\1.layer_norm.\2"),
    (r"^layer_norm\.(weight|bias)$", r"feature_projection.layer_norm.\1"),
    (r"^post_extract_proj\.(weight|bias)$", r"feature_projection.projection.\1"),
    (r"^mask_emb$", "masked_spec_embed"),
    (r"^encoder\.pos_conv\.0\.(.+)$", r"encoder.pos_conv_embed.conv.\1"),
    (r"^encoder\.layer_norm\.(weight|bias)$", r"encoder.layer_norm.\1"),
    (r"^encoder\.layers\.(\d+)\.self_attn\.([qkv]|out)_proj\.(weight|bias)$", r"encoder.layers.\1.attention.\2_proj.\3"),
    (r"^encoder\.layers\.(\d+)\.self_attn\.grep_linear\.(weight|bias)$", r"encoder.layers.\1.attention.gru_rel_pos_linear.\2"),
    (r"^encoder\.layers\.(\d+)\.self_attn\.grep_a$", r"encoder.layers.\1.attention.gru_rel_pos_const"),
    (
        r"^encoder\.layers\.(\d+)\.self_attn\.relative_attention_bias\.weight$",
        r"encoder.layers.\1.attention.rel_attn_embed.weight",
    ),
    (r"^encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)$", r"encoder.layers.\1.layer_norm.\2"),
    (r"^encoder\.layers\.(\d+)\.fc1\.(weight|bias)$", r"encoder.layers.\1.feed_forward.intermediate_dense.\2"),
    (r"^encoder\.layers\.(\d+)\.fc2\.(weight|bias)$", r"encoder.layers.\1.feed_forward.output_dense.\2"),
    (r"^encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)$", r"encoder.layers.\1.final_layer_norm.\2"),
]
_ORIGINAL_UNUSED = re.compile(r"^(label_embs_concat|final_proj\..*)$")


class WavLMContentEncoder(nn.Module):
    """wav [B, N] float32 16 kHz -> units [B, hidden, frames] from transformers' WavLMModel."""

    sample_rate = ENCODER_SAMPLE_RATE

    def __init__(self, name: str, model: nn.Module, normalize: bool):
        super().__init__()
        self.name = name
        self.model = model
        self.normalize = normalize
        self.dim = int(model.config.hidden_size)
        stride = 1
        for s in model.config.conv_stride:
            stride *= int(s)
        self.hop_size = stride

    def num_frames(self, num_samples: int) -> int:
        """Unit frames for ``num_samples`` input samples (0 if too short)."""
        n = num_samples
        for kernel, stride in zip(self.model.config.conv_kernel, self.model.config.conv_stride):
            n = (n - int(kernel)) // int(stride) + 1
            if n <= 0:
                return 0
        return n

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """wav: [B, N] -> [B, dim, frames]; per-item layer norm first when ``normalize``."""
        if wav.dim() != 2:
            raise ValueError(f"wav must be [batch, samples], got shape {tuple(wav.shape)}")
        if self.normalize:
            mean = wav.mean(dim=-1, keepdim=True)
            var = (wav - mean).pow(2).mean(dim=-1, keepdim=True)
            wav = (wav - mean) / torch.sqrt(var + 1e-5)
        return self.model(wav).last_hidden_state.transpose(1, 2)


def wavlm_config_from_original(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """microsoft/unilm ``WavLMConfig`` fields -> transformers ``WavLMConfig`` kwargs."""
    get = fairseq_field_getter(cfg)
    if not get("relative_position_embedding", True) or not get("gru_rel_pos", True):
        raise CheckpointLayoutError("WavLM without gated relative position bias is not supported")
    require_gelu(get("activation_fn", "gelu"), "activation_fn")
    layers = parse_conv_feature_layers(str(get("conv_feature_layers", DEFAULT_CONV_FEATURE_LAYERS)))
    mode = str(get("extractor_mode", "default"))
    if mode not in ("default", "layer_norm"):
        raise CheckpointLayoutError(f"extractor_mode={mode!r}: expected 'default' or 'layer_norm'")
    return {
        "hidden_size": int(get("encoder_embed_dim", 768)),
        "num_hidden_layers": int(get("encoder_layers", 12)),
        "num_attention_heads": int(get("encoder_attention_heads", 12)),
        "intermediate_size": int(get("encoder_ffn_embed_dim", 3072)),
        "hidden_act": "gelu",
        "conv_dim": [d for d, _, _ in layers],
        "conv_kernel": [k for _, k, _ in layers],
        "conv_stride": [s for _, _, s in layers],
        "conv_bias": bool(get("conv_bias", False)),
        "feat_extract_norm": "group" if mode == "default" else "layer",
        "do_stable_layer_norm": bool(get("layer_norm_first", False)),
        "num_conv_pos_embeddings": int(get("conv_pos", 128)),
        "num_conv_pos_embedding_groups": int(get("conv_pos_groups", 16)),
        "num_buckets": int(get("num_buckets", 320)),
        "max_bucket_distance": int(get("max_distance", 1280)),
        "layer_norm_eps": 1e-5,
    }


def wavlm_state_from_original(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """microsoft/unilm WavLM state dict -> transformers ``WavLMModel`` names."""
    return rename_keys(state, _ORIGINAL_RULES, _ORIGINAL_UNUSED, "WavLM encoder")


def _match_weight_norm_style(state: dict[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename pos-conv weight-norm keys to the style the installed transformers uses."""
    styles = (("weight_g", "weight_v"), ("parametrizations.weight.original0", "parametrizations.weight.original1"))
    prefix = "encoder.pos_conv_embed.conv."
    wanted = next((s for s in styles if prefix + s[0] in expected), None)
    if wanted is None:
        return state
    for style in styles:
        if style != wanted and prefix + style[0] in state:
            state[prefix + wanted[0]] = state.pop(prefix + style[0])
            state[prefix + wanted[1]] = state.pop(prefix + style[1])
    return state


def _build(config_kwargs: dict[str, Any], state: dict[str, torch.Tensor], source: str) -> nn.Module:
    from transformers import WavLMConfig, WavLMModel

    config = WavLMConfig(**{**config_kwargs, "mask_time_prob": 0.0, "mask_feature_prob": 0.0})
    model = WavLMModel(config)
    expected = model.state_dict()
    state = _match_weight_norm_style(state, expected)
    state.pop("masked_spec_embed", None)  # training-only; the config turns masking off
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointLayoutError(
            f"{source}: WavLM weights do not match the config (missing: {', '.join(missing[:6]) or '-'}; "
            f"unexpected: {', '.join(unexpected[:6]) or '-'})"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise CheckpointLayoutError(f"{source}: {error}") from error
    return model.eval()


def load_wavlm(path: Path, name: str = "wavlmbase+") -> WavLMContentEncoder:
    """WavLM from a Hugging Face folder or an original ``WavLM-Base+.pt``; eval mode."""
    if path.is_dir() or path.name in HF_WEIGHT_FILES or path.suffix == ".safetensors":
        config, raw = read_hf_folder(path)
        if config.get("model_type") != "wavlm":
            raise CheckpointLayoutError(f"{path}: config.json model_type={config.get('model_type')!r}, expected 'wavlm'")
        state = {k: v for k, v in strip_prefix(raw, "wavlm.").items() if not _HF_UNUSED.match(k)}
        kwargs = {k: v for k, v in config.items() if k not in ("architectures", "transformers_version")}
        folder = path if path.is_dir() else path.parent
        normalize = False
        preprocessor = folder / "preprocessor_config.json"
        if preprocessor.is_file():
            normalize = bool(json.loads(preprocessor.read_text(encoding="utf-8")).get("do_normalize", False))
        return WavLMContentEncoder(name, _build(kwargs, state, str(path)), normalize).eval()

    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("cfg"), Mapping) or "model" not in checkpoint:
        raise CheckpointLayoutError(f"{path}: not a WavLM checkpoint (expected {{'cfg': dict, 'model': state_dict}})")
    cfg = checkpoint["cfg"]
    kwargs = wavlm_config_from_original(cfg)
    state = wavlm_state_from_original(checkpoint["model"])
    return WavLMContentEncoder(name, _build(kwargs, state, str(path)), bool(cfg.get("normalize", False))).eval()
