"""DPHuBERT (dphubert): units against transformers' HubertModel holding the same pruned weights
(removed heads, feed-forward units and whole blocks as zeros, the conv-feature scale as a hook), on
small random post-LN and pre-LN configurations; the ONNX graph; refused checkpoints (malicious,
unpruned, DPWavLM); and a features -> train -> export -> convert round trip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from svc_train import load_content_encoder
from svc_train.encoders import ENCODER_SPECS, CheckpointLayoutError
from svc_train.safe_pickle import UnsafePickleError

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.usefixtures("single_thread")

EMBED, TOTAL_HEADS, HEAD_DIM, FULL_FFN = 32, 4, 8, 48
POST_LN = {
    "extractor_mode": "group_norm", "conv_bias": False, "layer_norm_first": False,
    "conv": [(16, 10, 5), (12, 3, 2), (10, 3, 2), (14, 3, 2), (16, 3, 2), (9, 2, 2), (11, 2, 2)],
    "heads": [2, 0, 4], "use_attention": [True, False, True], "ffn": [20, 0, 48], "use_ff": [True, False, True],
}
PRE_LN = {
    "extractor_mode": "layer_norm", "conv_bias": True, "layer_norm_first": True,
    "conv": [(12, 10, 5), (10, 3, 2), (12, 3, 2), (8, 3, 2), (12, 3, 2), (10, 2, 2), (12, 2, 2)],
    "heads": [3, 1, 0], "use_attention": [True, True, False], "ffn": [0, 30, 7], "use_ff": [False, True, True],
}


def _torchaudio_config(arch: dict) -> dict:
    """The `config` of a pruned DPHuBERT checkpoint (torchaudio `wav2vec2_model` arguments), as prune.py writes it."""
    layers = len(arch["heads"])
    return {
        "extractor_mode": arch["extractor_mode"], "extractor_conv_layer_config": arch["conv"],
        "extractor_conv_bias": arch["conv_bias"], "encoder_embed_dim": EMBED, "encoder_projection_dropout": 0.1,
        "encoder_pos_conv_kernel": 8, "encoder_pos_conv_groups": 4, "encoder_num_layers": layers,
        "encoder_use_attention": arch["use_attention"], "encoder_use_feed_forward": arch["use_ff"],
        "encoder_num_heads": arch["heads"], "encoder_head_dim": HEAD_DIM, "encoder_attention_dropout": 0.1,
        "encoder_ff_interm_features": arch["ffn"], "encoder_ff_interm_dropout": 0.0, "encoder_dropout": 0.1,
        "encoder_layer_norm_first": arch["layer_norm_first"], "encoder_layer_drop": 0.05, "aux_num_out": None,
        "normalize_waveform": False, "extractor_prune_conv_channels": False, "encoder_prune_attention_heads": False,
        "encoder_prune_attention_layer": False, "encoder_prune_feed_forward_intermediate": False,
        "encoder_prune_feed_forward_layer": False,
    }


def _random_state(arch: dict, seed: int) -> dict[str, torch.Tensor]:
    """Random pruned weights under torchaudio's names (positional conv with weight norm, dim 2)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=0.3):
        return torch.randn(*shape, generator=g) * scale

    def norm(prefix, size):
        state[prefix + ".weight"], state[prefix + ".bias"] = 1 + rnd(size, scale=0.1), rnd(size, scale=0.1)

    state: dict[str, torch.Tensor] = {}
    in_ch = 1
    for i, (ch, kernel, _) in enumerate(arch["conv"]):
        state[f"feature_extractor.conv_layers.{i}.conv.weight"] = rnd(ch, in_ch, kernel, scale=(1 / (in_ch * kernel)) ** 0.5)
        if arch["conv_bias"]:
            state[f"feature_extractor.conv_layers.{i}.conv.bias"] = rnd(ch, scale=0.1)
        if arch["extractor_mode"] == "layer_norm" or i == 0:
            norm(f"feature_extractor.conv_layers.{i}.layer_norm", ch)
        in_ch = ch
    state["feature_extractor.dummy_weight"] = torch.rand(in_ch, generator=g)
    norm("encoder.feature_projection.layer_norm", in_ch)
    state["encoder.feature_projection.projection.weight"] = rnd(EMBED, in_ch)
    state["encoder.feature_projection.projection.bias"] = rnd(EMBED, scale=0.1)
    state["encoder.transformer.pos_conv_embed.conv.weight_g"] = 1 + rnd(1, 1, 8, scale=0.1)
    state["encoder.transformer.pos_conv_embed.conv.weight_v"] = rnd(EMBED, EMBED // 4, 8)
    state["encoder.transformer.pos_conv_embed.conv.bias"] = rnd(EMBED, scale=0.1)
    norm("encoder.transformer.layer_norm", EMBED)
    for i in range(len(arch["heads"])):
        p = f"encoder.transformer.layers.{i}."
        if arch["use_attention"][i]:
            inner = arch["heads"][i] * HEAD_DIM
            for n in "qkv":
                state[p + f"attention.{n}_proj.weight"] = rnd(inner, EMBED)
                state[p + f"attention.{n}_proj.bias"] = rnd(inner, scale=0.1)
            state[p + "attention.out_proj.weight"] = rnd(EMBED, inner)
            state[p + "attention.out_proj.bias"] = rnd(EMBED, scale=0.1)
        norm(p + "layer_norm", EMBED)
        norm(p + "final_layer_norm", EMBED)
        if arch["use_ff"][i]:
            width = arch["ffn"][i]
            state[p + "feed_forward.intermediate_dense.weight"] = rnd(width, EMBED)
            state[p + "feed_forward.intermediate_dense.bias"] = rnd(width, scale=0.1)
            state[p + "feed_forward.output_dense.weight"] = rnd(EMBED, width)
            state[p + "feed_forward.output_dense.bias"] = rnd(EMBED, scale=0.1)
    return state


def write_dphubert(path: Path, arch: dict = POST_LN, seed: int = 0) -> Path:
    state = _random_state(arch, seed)
    torch.save({"config": _torchaudio_config(arch), "state_dict": state,
                "distill_linear_projs": {"0.weight": torch.zeros(3, EMBED)}}, path)
    return path


def _reference(arch: dict, state: dict[str, torch.Tensor]):
    """transformers' HubertModel at full size with the pruned weights embedded (zeros elsewhere) and the
    conv-feature scale applied by a forward hook."""
    layers = len(arch["heads"])
    config = transformers.HubertConfig(
        hidden_size=EMBED, num_hidden_layers=layers, num_attention_heads=TOTAL_HEADS, intermediate_size=FULL_FFN,
        conv_dim=[c for c, _, _ in arch["conv"]], conv_kernel=[k for _, k, _ in arch["conv"]],
        conv_stride=[s for _, _, s in arch["conv"]], conv_bias=arch["conv_bias"],
        feat_extract_norm="group" if arch["extractor_mode"] == "group_norm" else "layer",
        num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4, do_stable_layer_norm=arch["layer_norm_first"],
        feat_proj_layer_norm=True, hidden_act="gelu",
    )
    model = transformers.HubertModel(config).eval()
    weights = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    for key, value in state.items():
        if key.startswith("feature_extractor.conv_layers"):
            weights[key] = value
        elif key.startswith("encoder.feature_projection."):
            weights[key[len("encoder."):]] = value
        elif key.startswith("encoder.transformer.layer_norm."):
            weights[key.replace("encoder.transformer.", "encoder.")] = value
    for i in range(layers):
        p, q = f"encoder.transformer.layers.{i}.", f"encoder.layers.{i}."
        for n in ("layer_norm", "final_layer_norm"):
            for t in ("weight", "bias"):
                weights[f"{q}{n}.{t}"] = state[f"{p}{n}.{t}"]
        if arch["use_attention"][i]:
            inner = arch["heads"][i] * HEAD_DIM
            for n in "qkv":
                weights[q + f"attention.{n}_proj.weight"][:inner] = state[p + f"attention.{n}_proj.weight"]
                weights[q + f"attention.{n}_proj.bias"][:inner] = state[p + f"attention.{n}_proj.bias"]
            weights[q + "attention.out_proj.weight"][:, :inner] = state[p + "attention.out_proj.weight"]
            weights[q + "attention.out_proj.bias"] = state[p + "attention.out_proj.bias"]
        if arch["use_ff"][i]:
            width = arch["ffn"][i]
            weights[q + "feed_forward.intermediate_dense.weight"][:width] = state[p + "feed_forward.intermediate_dense.weight"]
            weights[q + "feed_forward.intermediate_dense.bias"][:width] = state[p + "feed_forward.intermediate_dense.bias"]
            weights[q + "feed_forward.output_dense.weight"][:, :width] = state[p + "feed_forward.output_dense.weight"]
            weights[q + "feed_forward.output_dense.bias"] = state[p + "feed_forward.output_dense.bias"]
    positional = [k for k in weights if k.startswith("encoder.pos_conv_embed.conv.")]
    model.load_state_dict({k: v for k, v in weights.items() if k not in positional}, strict=False)
    conv = model.encoder.pos_conv_embed.conv
    torch.nn.utils.parametrize.remove_parametrizations(conv, "weight", leave_parametrized=True)
    with torch.no_grad():
        conv.weight.copy_(torch._weight_norm(state["encoder.transformer.pos_conv_embed.conv.weight_v"],
                                             state["encoder.transformer.pos_conv_embed.conv.weight_g"], 2))
        conv.bias.copy_(state["encoder.transformer.pos_conv_embed.conv.bias"])
    scale = state["feature_extractor.dummy_weight"][:, None]
    model.feature_extractor.register_forward_hook(lambda _module, _args, out: out * scale)
    return model


def test_registry_entry():
    spec = ENCODER_SPECS["dphubert"]
    assert (spec.kind, spec.dim, spec.forms) == ("dphubert", 768, ("dphubert",))


@pytest.mark.parametrize("arch", [POST_LN, PRE_LN], ids=["post_ln_group_norm", "pre_ln_layer_norm"])
def test_units_match_transformers_hubert_with_the_pruned_weights(tmp_path, arch):
    path = write_dphubert(tmp_path / "DPHuBERT-sp0.75.pth", arch, seed=1)
    encoder = load_content_encoder("dphubert", path)
    assert (encoder.dim, encoder.hop_size, encoder.min_samples) == (EMBED, 320, 400)
    assert [layer.attention is None for layer in encoder.layers] == [not u for u in arch["use_attention"]]
    reference = _reference(arch, torch.load(path, weights_only=True)["state_dict"])
    wav = 0.3 * torch.randn(2, 8000, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        units = encoder(wav)
        expected = reference(wav).last_hidden_state.transpose(1, 2)
    assert units.shape == (2, EMBED, encoder.num_frames(8000)) == expected.shape == (2, EMBED, 24)
    assert (units - expected).abs().max() < 1e-4  # measured 1.4e-5 at peak ~3
    assert expected.abs().max() > 1.0


def test_onnx_graph_matches_torch(tmp_path):
    from svc_export.onnx_export import export_onnx, torch_parity
    from svc_export.plans import speech_encoder_plan

    encoder = load_content_encoder("dphubert", write_dphubert(tmp_path / "dp.pth"))
    plan = speech_encoder_plan(encoder, EMBED)
    export_onnx(plan, tmp_path / "speech_encoder.onnx")
    results = torch_parity(plan, tmp_path / "speech_encoder.onnx")
    assert all(r.max_abs_error < 1e-4 for r in results), results


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    checkpoint = torch.load(write_dphubert(tmp_path / "dp.pth"), weights_only=True)
    checkpoint["config"]["extra"] = _Payload(marker)
    torch.save(checkpoint, tmp_path / "evil.pth")
    with pytest.raises(UnsafePickleError, match="posix.system|os.system"):
        load_content_encoder("dphubert", tmp_path / "evil.pth")
    assert not marker.exists()


def test_checkpoints_it_cannot_run_are_refused_by_name(tmp_path):
    checkpoint = torch.load(write_dphubert(tmp_path / "dp.pth"), weights_only=True)
    unpruned = dict(checkpoint, config={**checkpoint["config"], "encoder_prune_attention_heads": True})
    torch.save(unpruned, tmp_path / "unpruned.pth")
    with pytest.raises(CheckpointLayoutError, match="unpruned.pth: an unpruned DPHuBERT.*prune.py"):
        load_content_encoder("dphubert", tmp_path / "unpruned.pth")
    wavlm = dict(checkpoint, config={**checkpoint["config"], "encoder_remaining_heads": [[0, 1]] * 3})
    torch.save(wavlm, tmp_path / "dpwavlm.pth")
    with pytest.raises(CheckpointLayoutError, match="DPWavLM"):
        load_content_encoder("dphubert", tmp_path / "dpwavlm.pth")
    wider = dict(checkpoint, config={**checkpoint["config"], "encoder_ff_interm_features": [21, 0, 48]})
    torch.save(wider, tmp_path / "wider.pth")
    with pytest.raises(CheckpointLayoutError, match=r"layers\.0\.feed_forward\.intermediate_dense\.weight has shape"):
        load_content_encoder("dphubert", tmp_path / "wider.pth")
    torch.save({"model": {}}, tmp_path / "fairseq.pt")
    with pytest.raises(CheckpointLayoutError, match="not a DPHuBERT checkpoint"):
        load_content_encoder("dphubert", tmp_path / "fairseq.pt")
    with pytest.raises(FileNotFoundError, match="DPHuBERT-sp0.75.pth"):
        load_content_encoder("dphubert", tmp_path / "nowhere.pth")


@pytest.mark.timeout(300)
def test_round_trip_features_train_export_convert(tmp_path):
    from encoder_roundtrip import check_round_trip, round_trip

    path = write_dphubert(tmp_path / "DPHuBERT-sp0.75.pth")
    check_round_trip(round_trip(tmp_path / "run", "dphubert", path, EMBED), "dphubert", EMBED)
