"""Checkpoint layouts -> `HubertConfig` + state dict in `HubertEncoder`'s key names.

Three layouts of the same network:

- fairseq ``HubertModel`` (ContentVec ``checkpoint_best_legacy_500.pt``,
  chinese-hubert-large fairseq checkpoint): config in ``cfg['model']`` or ``args``;
- Hugging Face ``HubertModel`` (``lengyue233/content-vec-best``,
  ``TencentGameMate/chinese-hubert-large``): ``config.json`` + weights, optional
  ``hubert.`` prefix and top-level ``final_proj``;
- bshall hubert-soft (``hubert-soft-0d54a1f4.pt``): a bare state dict, optional
  ``module.`` prefix, torch ``nn.TransformerEncoderLayer`` names, sizes only in
  the tensor shapes.

Weight norm (positional conv) is folded into a plain weight; both key styles,
``weight_g``/``weight_v`` and ``parametrizations.weight.original0``/``original1``,
are accepted.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from typing import Any

import torch

from svc_train.encoders.hubert import HubertConfig

__all__ = [
    "DEFAULT_CONV_FEATURE_LAYERS",
    "CheckpointLayoutError",
    "config_from_fairseq",
    "config_from_hf",
    "config_from_hubert_soft",
    "fold_weight_norm",
    "fairseq_field_getter",
    "parse_conv_feature_layers",
    "rename_keys",
    "require_gelu",
    "state_from_fairseq",
    "state_from_hf",
    "state_from_hubert_soft",
    "strip_prefix",
]

DEFAULT_CONV_FEATURE_LAYERS = "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"

# Tensors that exist in these checkpoints but take no part in inference.
_FAIRSEQ_UNUSED = re.compile(r"^(mask_emb|label_embs_concat|label_embs\..*)$")
_HF_UNUSED = re.compile(r"^(masked_spec_embed|lm_head\..*|projector\..*|classifier\..*|layer_weights)$")
_SOFT_UNUSED = re.compile(r"^(masked_spec_embed|label_embedding\.weight)$")


class CheckpointLayoutError(ValueError):
    """The checkpoint's keys or config do not describe a supported HuBERT layout."""


# ---------------------------------------------------------------- weight norm


def fold_weight_norm(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Replace ``{prefix}weight_g/_v`` (or ``parametrizations.weight.original0/1``) by ``{prefix}weight``.

    weight = g * v / ||v||, the norm taken over every dim where g has size 1.
    Other keys pass through; a plain ``{prefix}weight`` is kept as it is.
    """
    out = dict(state)
    styles = (
        (f"{prefix}weight_g", f"{prefix}weight_v"),
        (f"{prefix}parametrizations.weight.original0", f"{prefix}parametrizations.weight.original1"),
    )
    for g_key, v_key in styles:
        if g_key in out and v_key in out:
            g, v = out.pop(g_key), out.pop(v_key)
            if g.dim() != v.dim():
                raise CheckpointLayoutError(f"{g_key} {tuple(g.shape)} does not match {v_key} {tuple(v.shape)}")
            kept = [d for d in range(g.dim()) if g.shape[d] != 1]
            if len(kept) > 1 or any(g.shape[d] != v.shape[d] for d in kept):
                raise CheckpointLayoutError(f"{g_key} {tuple(g.shape)} is not a weight-norm gain of {tuple(v.shape)}")
            dim = kept[0] if kept else v.dim() - 1
            out[f"{prefix}weight"] = torch._weight_norm(v, g, dim)
            return out
    if f"{prefix}weight" not in out:
        raise CheckpointLayoutError(
            f"no weight for {prefix.rstrip('.')}: expected {prefix}weight_g/weight_v, "
            f"{prefix}parametrizations.weight.original0/original1 or {prefix}weight"
        )
    return out


# ---------------------------------------------------------------- key renaming


def rename_keys(
    state: Mapping[str, torch.Tensor], rules: list[tuple[str, str]], unused: re.Pattern[str], encoder: str
) -> dict[str, torch.Tensor]:
    """Rename every key by the first `(pattern, replacement)` rule that matches; drop `unused` keys.

    A key no rule matches is an error naming `encoder` (e.g. "fairseq HuBERT encoder").
    """
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        if unused.match(key):
            continue
        for pattern, replacement in rules:
            new_key, count = re.subn(pattern, replacement, key)
            if count:
                out[new_key] = value
                break
        else:
            unknown.append(key)
    if unknown:
        shown = ", ".join(unknown[:8]) + (" ..." if len(unknown) > 8 else "")
        raise CheckpointLayoutError(f"{len(unknown)} keys are not part of a {encoder}: {shown}")
    return out


_FAIRSEQ_RULES = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)$", r"feature_extractor.conv_layers.\1.conv.\2"),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)$", r"feature_extractor.conv_layers.\1.norm.\2"),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.(weight|bias)$", r"feature_extractor.conv_layers.\1.norm.\2"),
    (r"^layer_norm\.(weight|bias)$", r"feature_projection.layer_norm.\1"),
    (r"^post_extract_proj\.(weight|bias)$", r"feature_projection.projection.\1"),
    (r"^encoder\.pos_conv\.0\.(.+)$", r"encoder.pos_conv.conv.\1"),
    (r"^encoder\.layer_norm\.(weight|bias)$", r"encoder.layer_norm.\1"),
    (r"^encoder\.layers\.(\d+)\.self_attn\.([qkv]|out)_proj\.(weight|bias)$", r"encoder.layers.\1.attention.\2_proj.\3"),
    (r"^encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)$", r"encoder.layers.\1.attention_norm.\2"),
    (r"^encoder\.layers\.(\d+)\.(fc1|fc2)\.(weight|bias)$", r"encoder.layers.\1.feed_forward.\2.\3"),
    (r"^encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)$", r"encoder.layers.\1.final_layer_norm.\2"),
    (r"^final_proj\.(weight|bias)$", r"final_proj.\1"),
]

_HF_RULES = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.conv\.(weight|bias)$", r"feature_extractor.conv_layers.\1.conv.\2"),
    (r"^feature_extractor\.conv_layers\.(\d+)\.layer_norm\.(weight|bias)$", r"feature_extractor.conv_layers.\1.norm.\2"),
    (r"^feature_projection\.(layer_norm|projection)\.(weight|bias)$", r"feature_projection.\1.\2"),
    (r"^encoder\.pos_conv_embed\.conv\.(.+)$", r"encoder.pos_conv.conv.\1"),
    (r"^encoder\.layer_norm\.(weight|bias)$", r"encoder.layer_norm.\1"),
    (r"^encoder\.layers\.(\d+)\.attention\.([qkv]|out)_proj\.(weight|bias)$", r"encoder.layers.\1.attention.\2_proj.\3"),
    (r"^encoder\.layers\.(\d+)\.layer_norm\.(weight|bias)$", r"encoder.layers.\1.attention_norm.\2"),
    (r"^encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.(weight|bias)$", r"encoder.layers.\1.feed_forward.fc1.\2"),
    (r"^encoder\.layers\.(\d+)\.feed_forward\.output_dense\.(weight|bias)$", r"encoder.layers.\1.feed_forward.fc2.\2"),
    (r"^encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)$", r"encoder.layers.\1.final_layer_norm.\2"),
    (r"^final_proj\.(weight|bias)$", r"final_proj.\1"),
]

_SOFT_RULES = [
    (r"^feature_extractor\.conv(\d+)\.(weight|bias)$", r"feature_extractor.conv_layers.\1.conv.\2"),
    (r"^feature_extractor\.norm0\.(weight|bias)$", r"feature_extractor.conv_layers.0.norm.\1"),
    (r"^feature_projection\.norm\.(weight|bias)$", r"feature_projection.layer_norm.\1"),
    (r"^feature_projection\.projection\.(weight|bias)$", r"feature_projection.projection.\1"),
    (r"^positional_embedding\.conv\.(.+)$", r"encoder.pos_conv.conv.\1"),
    (r"^norm\.(weight|bias)$", r"encoder.layer_norm.\1"),
    (r"^encoder\.layers\.(\d+)\.self_attn\.(in_proj_weight|in_proj_bias)$", r"encoder.layers.\1.attention.\2"),
    (r"^encoder\.layers\.(\d+)\.self_attn\.out_proj\.(weight|bias)$", r"encoder.layers.\1.attention.out_proj.\2"),
    (r"^encoder\.layers\.(\d+)\.linear1\.(weight|bias)$", r"encoder.layers.\1.feed_forward.fc1.\2"),
    (r"^encoder\.layers\.(\d+)\.linear2\.(weight|bias)$", r"encoder.layers.\1.feed_forward.fc2.\2"),
    (r"^encoder\.layers\.(\d+)\.norm1\.(weight|bias)$", r"encoder.layers.\1.attention_norm.\2"),
    (r"^encoder\.layers\.(\d+)\.norm2\.(weight|bias)$", r"encoder.layers.\1.final_layer_norm.\2"),
    (r"^proj\.(weight|bias)$", r"final_proj.\1"),
]


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Drop ``prefix`` from every key that has it (``hubert.``, ``module.``)."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}


def state_from_fairseq(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fairseq ``HubertModel`` state dict -> `HubertEncoder` keys (weight norm folded)."""
    renamed = rename_keys(state, _FAIRSEQ_RULES, _FAIRSEQ_UNUSED, "fairseq HuBERT encoder")
    return fold_weight_norm(renamed, "encoder.pos_conv.conv.")


def state_from_hf(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hugging Face ``HubertModel`` state dict (optional ``hubert.`` prefix) -> `HubertEncoder` keys."""
    state = strip_prefix(state, "hubert.")
    if any(k.startswith("encoder.pos_conv_embed.batch_norm.") for k in state):
        raise CheckpointLayoutError("positional conv with batch norm (conv_pos_batch_norm=True) is not supported")
    renamed = rename_keys(state, _HF_RULES, _HF_UNUSED, "Hugging Face HuBERT encoder")
    return fold_weight_norm(renamed, "encoder.pos_conv.conv.")


def state_from_hubert_soft(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """bshall hubert-soft state dict (optional ``module.`` prefix) -> `HubertEncoder` keys.

    ``nn.MultiheadAttention``'s packed ``in_proj_weight`` [3D, D] is split into q, k, v.
    """
    renamed = rename_keys(strip_prefix(state, "module."), _SOFT_RULES, _SOFT_UNUSED, "hubert-soft HuBERT encoder")
    out = {}
    for key, value in renamed.items():
        packed = re.match(r"^(encoder\.layers\.\d+\.attention)\.in_proj_(weight|bias)$", key)
        if packed:
            base, kind = packed.groups()
            if value.shape[0] % 3:
                raise CheckpointLayoutError(f"{key} has {value.shape[0]} rows, not a multiple of 3 (q, k, v)")
            for name, part in zip("qkv", value.chunk(3, dim=0)):
                out[f"{base}.{name}_proj.{kind}"] = part
        else:
            out[key] = value
    return fold_weight_norm(out, "encoder.pos_conv.conv.")


# ---------------------------------------------------------------- configs


def parse_conv_feature_layers(spec: str) -> tuple[tuple[int, int, int], ...]:
    """fairseq ``conv_feature_layers`` (a Python list expression) -> ((dim, kernel, stride), ...).

    Evaluated without ``eval``: only list/tuple literals of ints, ``+`` and ``*``.
    """

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Tuple):
            return tuple(value(e) for e in node.elts)
        if isinstance(node, ast.List):
            return [value(e) for e in node.elts]
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = value(node.left), value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise CheckpointLayoutError(f"conv_feature_layers: unsupported expression {ast.dump(node)[:60]}")

    try:
        tree = ast.parse(spec, mode="eval")
    except SyntaxError as error:
        raise CheckpointLayoutError(f"conv_feature_layers is not a list expression: {spec!r}") from error
    layers = value(tree.body)
    if not isinstance(layers, list) or not all(
        isinstance(t, tuple) and len(t) == 3 and all(isinstance(x, int) for x in t) for t in layers
    ):
        raise CheckpointLayoutError(f"conv_feature_layers must be a list of (dim, kernel, stride): {spec!r}")
    return tuple(layers)


def fairseq_field_getter(cfg: Mapping[str, Any]) -> Callable[[str, Any], Any]:
    """`get(field, default)` over a fairseq-style config: the default where absent or None."""

    def get(field: str, default: Any) -> Any:
        value = cfg.get(field, default)
        return default if value is None else value

    return get


def _final_proj_dim(state: Mapping[str, torch.Tensor]) -> int:
    weight = state.get("final_proj.weight")
    return 0 if weight is None else int(weight.shape[0])


def require_gelu(value: Any, field: str) -> None:
    """Refuse an activation other than GELU (None means the default, GELU)."""
    if value is not None and str(value) != "gelu":
        raise CheckpointLayoutError(f"{field}={value!r} is not supported (only 'gelu')")


def config_from_fairseq(model_cfg: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> HubertConfig:
    """fairseq model config (``cfg['model']`` or the ``args`` namespace as a dict) -> `HubertConfig`.

    ``state`` is the already renamed state dict (for final_proj and the projection).
    Missing fields take fairseq ``HubertConfig`` defaults.
    """
    get = fairseq_field_getter(model_cfg)
    require_gelu(get("activation_fn", "gelu"), "activation_fn")
    if get("layer_type", "transformer") != "transformer":
        raise CheckpointLayoutError(f"layer_type={get('layer_type', '')!r} is not supported (only 'transformer')")
    if int(get("pos_conv_depth", 1)) != 1:
        raise CheckpointLayoutError(f"pos_conv_depth={get('pos_conv_depth', 1)} is not supported (only 1)")
    try:
        return HubertConfig(
            conv_layers=parse_conv_feature_layers(str(get("conv_feature_layers", DEFAULT_CONV_FEATURE_LAYERS))),
            extractor_mode=str(get("extractor_mode", "default")),
            conv_bias=bool(get("conv_bias", False)),
            embed_dim=int(get("encoder_embed_dim", 768)),
            ffn_dim=int(get("encoder_ffn_embed_dim", 3072)),
            num_layers=int(get("encoder_layers", 12)),
            num_heads=int(get("encoder_attention_heads", 12)),
            layer_norm_first=bool(get("layer_norm_first", False)),
            conv_pos=int(get("conv_pos", 128)),
            conv_pos_groups=int(get("conv_pos_groups", 16)),
            feature_layer_norm=True,
            feature_projection="feature_projection.projection.weight" in state,
            final_proj_dim=_final_proj_dim(state),
        )
    except ValueError as error:
        raise CheckpointLayoutError(f"fairseq config: {error}") from error


def config_from_hf(config: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> HubertConfig:
    """transformers ``HubertConfig`` fields (config.json) -> `HubertConfig`."""
    model_type = config.get("model_type", "hubert")
    if model_type != "hubert":
        raise CheckpointLayoutError(f"config.json model_type={model_type!r}: expected 'hubert'")
    if config.get("conv_pos_batch_norm", False):
        raise CheckpointLayoutError("conv_pos_batch_norm=True is not supported")
    require_gelu(config.get("hidden_act", "gelu"), "hidden_act")
    require_gelu(config.get("feat_extract_activation", "gelu"), "feat_extract_activation")
    norm = config.get("feat_extract_norm", "group")
    if norm not in ("group", "layer"):
        raise CheckpointLayoutError(f"feat_extract_norm={norm!r}: expected 'group' or 'layer'")
    try:
        dims, kernels, strides = config["conv_dim"], config["conv_kernel"], config["conv_stride"]
        if not len(dims) == len(kernels) == len(strides):
            raise CheckpointLayoutError("conv_dim, conv_kernel and conv_stride differ in length")
        return HubertConfig(
            conv_layers=tuple((int(d), int(k), int(s)) for d, k, s in zip(dims, kernels, strides)),
            extractor_mode="default" if norm == "group" else "layer_norm",
            conv_bias=bool(config.get("conv_bias", False)),
            embed_dim=int(config["hidden_size"]),
            ffn_dim=int(config["intermediate_size"]),
            num_layers=int(config["num_hidden_layers"]),
            num_heads=int(config["num_attention_heads"]),
            layer_norm_first=bool(config.get("do_stable_layer_norm", False)),
            conv_pos=int(config.get("num_conv_pos_embeddings", 128)),
            conv_pos_groups=int(config.get("num_conv_pos_embedding_groups", 16)),
            feature_layer_norm=bool(config.get("feat_proj_layer_norm", True)),
            feature_projection=True,
            final_proj_dim=_final_proj_dim(state),
            eps=float(config.get("layer_norm_eps", 1e-5)),
        )
    except KeyError as error:
        raise CheckpointLayoutError(f"config.json lacks the field {error.args[0]!r}") from error
    except ValueError as error:
        raise CheckpointLayoutError(f"config.json: {error}") from error


# bshall's FeatureExtractor: kernel -> stride of the wav2vec 2.0 conv stack.
_SOFT_STRIDES = {10: 5, 3: 2, 2: 2}
SOFT_HEAD_DIM = 64  # bshall's Hubert: 768 dims, 12 heads


def config_from_hubert_soft(state: Mapping[str, torch.Tensor]) -> HubertConfig:
    """hubert-soft sizes from the (renamed) tensor shapes.

    The bshall code fixes what shapes do not show: strides of the wav2vec 2.0
    conv stack, 64-dim attention heads, post-LN, GroupNorm after conv 0.
    """
    conv_layers = []
    index = 0
    while f"feature_extractor.conv_layers.{index}.conv.weight" in state:
        out_ch, _, kernel = state[f"feature_extractor.conv_layers.{index}.conv.weight"].shape
        if kernel not in _SOFT_STRIDES:
            raise CheckpointLayoutError(f"hubert-soft conv{index} has kernel {kernel}; expected 10, 3 or 2")
        conv_layers.append((int(out_ch), int(kernel), _SOFT_STRIDES[int(kernel)]))
        index += 1
    num_layers = 0
    while f"encoder.layers.{num_layers}.attention.q_proj.weight" in state:
        num_layers += 1
    try:
        embed_dim = int(state["feature_projection.projection.weight"].shape[0])
        pos_weight = state["encoder.pos_conv.conv.weight"]
        return HubertConfig(
            conv_layers=tuple(conv_layers),
            extractor_mode="default",
            conv_bias=False,
            embed_dim=embed_dim,
            ffn_dim=int(state["encoder.layers.0.feed_forward.fc1.weight"].shape[0]),
            num_layers=num_layers,
            num_heads=max(1, embed_dim // SOFT_HEAD_DIM),
            layer_norm_first=False,
            conv_pos=int(pos_weight.shape[2]),
            conv_pos_groups=embed_dim // int(pos_weight.shape[1]),
            final_proj_dim=_final_proj_dim(state),
        )
    except KeyError as error:
        raise CheckpointLayoutError(f"hubert-soft checkpoint lacks {error.args[0]!r}") from error
    except ValueError as error:
        raise CheckpointLayoutError(f"hubert-soft checkpoint: {error}") from error
