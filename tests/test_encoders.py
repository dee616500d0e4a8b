"""Speech encoders: parity with the contentvec_small reference outputs, key-layout edge cases,
so-vits-svc input handling, errors, and ONNX export with a dynamic sample axis."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from svc_train import load_content_encoder
from svc_train.encoders import CheckpointLayoutError, ContentEncoder
from svc_train.encoders.loading import load_fairseq_hubert, load_hf_hubert

torch.set_num_threads(1)

TOL = 1e-4


@pytest.fixture(scope="module")
def cv_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "contentvec_small"


@pytest.fixture(scope="module")
def reference(cv_dir: Path) -> dict[str, np.ndarray]:
    with np.load(cv_dir / "io.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def wav(reference) -> torch.Tensor:
    return torch.from_numpy(reference["wav"])[None]


def _max_err(a: torch.Tensor, b: np.ndarray) -> float:
    assert tuple(a.shape) == b.shape, (tuple(a.shape), b.shape)
    return float(np.abs(a.detach().numpy() - b).max())


CHECKPOINTS = ["fairseq_checkpoint.pt", "fairseq_checkpoint_omegaconf.pt", "hf"]


def test_hf_weight_file_path_is_accepted(cv_dir, reference, wav):
    encoder = load_content_encoder("vec768l12", cv_dir / "hf" / "pytorch_model.bin")
    with torch.no_grad():
        assert _max_err(encoder(wav).transpose(1, 2), reference["vec_last"]) < TOL


@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
def test_every_hidden_state_matches_reference(cv_dir, reference, wav, checkpoint):
    path = cv_dir / checkpoint
    loaded = load_hf_hubert(path) if checkpoint == "hf" else load_fairseq_hubert(path)
    with torch.no_grad():
        states = loaded.model.hidden_states(wav)
        conv = loaded.model.conv_features(wav)
    assert len(states) == 13
    assert _max_err(conv, reference["conv_features"]) < TOL
    errors = [_max_err(states[i], reference[f"hidden_states_{i}"]) for i in range(13)]
    assert max(errors) < TOL, errors


@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
def test_vec768l12_and_vec256l9_match_reference(cv_dir, reference, wav, checkpoint):
    vec_last = load_content_encoder("vec768l12", cv_dir / checkpoint)
    vec_l9 = load_content_encoder("vec256l9", cv_dir / checkpoint)
    assert not vec_last.training and not vec_l9.training
    with torch.no_grad():
        last, l9 = vec_last(wav), vec_l9(wav)
    # so-vits-svc returns [B, dim, frames]; the reference is time-major.
    assert last.shape == (1, 64, int(reference["frames"]))
    assert l9.shape == (1, 16, int(reference["frames"]))
    assert vec_last.dim == 64 and vec_l9.dim == 16
    assert _max_err(last.transpose(1, 2), reference["vec_last"]) < TOL
    assert _max_err(l9.transpose(1, 2), reference["vec_l9_proj"]) < TOL


def test_vec768l9_and_vec256l12_select_layer_and_projection(cv_dir, reference, wav):
    l9 = load_content_encoder("vec768l9", cv_dir / "hf")
    l12p = load_content_encoder("vec256l12", cv_dir / "fairseq_checkpoint.pt")
    with torch.no_grad():
        assert _max_err(l9(wav).transpose(1, 2), reference["hidden_states_9"]) < TOL
        expected = l12p.body.final_proj(torch.from_numpy(reference["hidden_states_12"])).numpy()
        assert _max_err(l12p(wav).transpose(1, 2), expected) < TOL


def test_batch_rows_are_independent(cv_dir, wav):
    encoder = load_content_encoder("vec768l12", cv_dir / "fairseq_checkpoint.pt")
    batch = torch.cat([wav, 0.5 * wav.flip(-1)])
    with torch.no_grad():
        together = encoder(batch)
        alone = encoder(batch[1:])
    assert float((together[1:] - alone).abs().max()) < 1e-5


# ---------------------------------------------------------------- key layouts


def _hf_copy(cv_dir: Path, tmp_path: Path, rename, save_as: str = "pytorch_model.bin") -> Path:
    folder = tmp_path / "hf_variant"
    folder.mkdir()
    shutil.copy(cv_dir / "hf" / "config.json", folder / "config.json")
    state = torch.load(cv_dir / "hf" / "pytorch_model.bin", map_location="cpu", weights_only=True)
    renamed = {rename(k): v for k, v in state.items()}
    if save_as.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in renamed.items()}, str(folder / save_as))
    else:
        torch.save(renamed, folder / save_as)
    return folder


def _parametrized(key: str) -> str:
    return key.replace("conv.weight_g", "conv.parametrizations.weight.original0").replace(
        "conv.weight_v", "conv.parametrizations.weight.original1"
    )


def _with_hubert_prefix(key: str) -> str:
    return key if key.startswith("final_proj.") else "hubert." + key


@pytest.mark.parametrize(
    "rename, save_as",
    [
        (_parametrized, "pytorch_model.bin"),
        (_with_hubert_prefix, "pytorch_model.bin"),
        (lambda k: _with_hubert_prefix(_parametrized(k)), "model.safetensors"),
    ],
    ids=["parametrizations", "hubert-prefix", "both-safetensors"],
)
def test_hf_key_styles_give_same_outputs(cv_dir, reference, wav, tmp_path, rename, save_as):
    folder = _hf_copy(cv_dir, tmp_path, rename, save_as)
    encoder = load_content_encoder("vec256l9", folder)
    with torch.no_grad():
        assert _max_err(encoder(wav).transpose(1, 2), reference["vec_l9_proj"]) < TOL


def test_fairseq_parametrization_names_accepted(cv_dir, reference, wav, tmp_path):
    checkpoint = torch.load(cv_dir / "fairseq_checkpoint.pt", map_location="cpu", weights_only=True)
    checkpoint["model"] = {
        k.replace("pos_conv.0.weight_g", "pos_conv.0.parametrizations.weight.original0").replace(
            "pos_conv.0.weight_v", "pos_conv.0.parametrizations.weight.original1"
        ): v
        for k, v in checkpoint["model"].items()
    }
    assert "encoder.pos_conv.0.parametrizations.weight.original0" in checkpoint["model"]
    torch.save(checkpoint, tmp_path / "ck.pt")
    encoder = load_content_encoder("vec768l12", tmp_path / "ck.pt")
    with torch.no_grad():
        assert _max_err(encoder(wav).transpose(1, 2), reference["vec_last"]) < TOL


def test_fairseq_args_namespace_checkpoint(cv_dir, reference, wav, tmp_path):
    """Older fairseq checkpoints: cfg None, config in an argparse Namespace under 'args'."""
    import argparse

    checkpoint = torch.load(cv_dir / "fairseq_checkpoint.pt", map_location="cpu", weights_only=True)
    fields = dict(checkpoint["cfg"]["model"]) | dict(checkpoint["cfg"]["task"])
    checkpoint["args"], checkpoint["cfg"] = argparse.Namespace(**fields), None
    torch.save(checkpoint, tmp_path / "args.pt")
    encoder = load_content_encoder("vec256l9", tmp_path / "args.pt")
    with torch.no_grad():
        assert _max_err(encoder(wav).transpose(1, 2), reference["vec_l9_proj"]) < TOL


def test_ignoring_weight_norm_gain_would_be_caught(cv_dir, reference, wav, tmp_path):
    """The fixture's g != ||v||: a checkpoint with g replaced by ||v|| must not match."""
    folder = _hf_copy(cv_dir, tmp_path, lambda k: k)
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    v = state["encoder.pos_conv_embed.conv.weight_v"]
    state["encoder.pos_conv_embed.conv.weight_g"] = v.norm(dim=(0, 1), keepdim=True)
    torch.save(state, folder / "pytorch_model.bin")
    encoder = load_content_encoder("vec768l12", folder)
    with torch.no_grad():
        assert _max_err(encoder(wav).transpose(1, 2), reference["vec_last"]) > 0.1


def test_unknown_key_is_a_clear_error(cv_dir, tmp_path):
    folder = _hf_copy(cv_dir, tmp_path, lambda k: k.replace("encoder.layers.3.final_layer_norm", "encoder.layers.3.mystery"))
    with pytest.raises(CheckpointLayoutError, match="encoder.layers.3.mystery"):
        load_content_encoder("vec768l12", folder)


def test_missing_key_is_a_clear_error(cv_dir, tmp_path):
    folder = _hf_copy(cv_dir, tmp_path, lambda k: k)
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    del state["encoder.layers.11.feed_forward.output_dense.bias"]
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointLayoutError, match=r"missing 1: encoder\.layers\.11\.feed_forward\.fc2\.bias"):
        load_content_encoder("vec768l12", folder)


# ---------------------------------------------------------------- names and errors


def test_unknown_name_lists_supported(cv_dir):
    with pytest.raises(ValueError, match="unknown speech encoder 'vec999'.*vec768l12"):
        load_content_encoder("vec999", cv_dir / "hf")


def test_checkpoint_of_another_encoder_is_named(cv_dir):
    with pytest.raises(CheckpointLayoutError, match="hf: config.json model_type='hubert': expected 'whisper'"):
        load_content_encoder("whisper-ppg", cv_dir / "hf")


@pytest.mark.parametrize(
    "name, needed",
    [
        ("vec768l12", "checkpoint_best_legacy_500.pt"),
        ("hubertsoft", "hubert-soft-0d54a1f4.pt"),
        ("cnhubertlarge", "chinese-hubert-large-fairseq-ckpt.pt"),
        ("wavlmbase+", "WavLM-Base+.pt"),
    ],
)
def test_missing_checkpoint_says_which_file(tmp_path, name, needed):
    with pytest.raises(FileNotFoundError, match=re.escape(needed)) as info:
        load_content_encoder(name, tmp_path / "nowhere.pt")
    assert str(tmp_path / "nowhere.pt") in str(info.value)


def test_layer_beyond_checkpoint_depth_is_an_error(cv_dir, tmp_path):
    folder = tmp_path / "shallow"
    shutil.copytree(cv_dir / "hf", folder)
    config = json.loads((folder / "config.json").read_text())
    config["num_hidden_layers"] = 10
    (folder / "config.json").write_text(json.dumps(config))
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    state = {k: v for k, v in state.items() if not any(f"encoder.layers.{i}." in k for i in range(10, 12))}
    torch.save(state, folder / "pytorch_model.bin")
    assert load_content_encoder("vec256l9", folder).body.config.num_layers == 10
    with pytest.raises(CheckpointLayoutError, match="layer 12.*only 10 layers"):
        load_content_encoder("vec768l12", folder)


def test_projection_needed_but_absent(cv_dir, tmp_path):
    folder = _hf_copy(cv_dir, tmp_path, lambda k: k)
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("final_proj.")}
    torch.save(state, folder / "pytorch_model.bin")
    assert load_content_encoder("vec768l12", folder).dim == 64
    with pytest.raises(CheckpointLayoutError, match="final_proj"):
        load_content_encoder("vec256l9", folder)


def test_short_and_misshapen_input_errors(cv_dir):
    encoder = load_content_encoder("vec768l12", cv_dir / "hf")
    with pytest.raises(ValueError, match=r"\[batch, samples\]"):
        encoder(torch.zeros(1000))
    with pytest.raises(ValueError, match="at least 400"):
        encoder(torch.zeros(1, 399))
    assert encoder(torch.zeros(1, 400)).shape == (1, 64, 1)


def test_no_waveform_normalisation_for_vec(cv_dir, wav):
    """so-vits-svc feeds vec* the raw waveform; a layer-normalised input moves the
    output by ~2e-3 on this fixture (its README), far above the parity tolerance."""
    encoder = load_content_encoder("vec768l12", cv_dir / "hf")
    assert isinstance(encoder, ContentEncoder)
    with torch.no_grad():
        plain = encoder(wav)
        normalised = encoder((wav - wav.mean()) / torch.sqrt(wav.var(unbiased=False) + 1e-5))
    assert float((normalised - plain).abs().max()) > 10 * TOL


# ---------------------------------------------------------------- ONNX export


def _export_onnx(encoder: torch.nn.Module, path: Path) -> None:
    torch.onnx.export(
        encoder,
        (torch.zeros(1, 16000),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["wav"],
        output_names=["units"],
        dynamic_axes={"wav": {0: "batch", 1: "samples"}, "units": {0: "batch", 2: "frames"}},
    )


@pytest.mark.parametrize("name", ["vec768l12", "vec256l9"])
def test_onnx_export_matches_torch_at_three_lengths(cv_dir, reference, tmp_path, name):
    import onnxruntime as ort

    encoder = load_content_encoder(name, cv_dir / "fairseq_checkpoint.pt")
    _export_onnx(encoder, tmp_path / f"{name}.onnx")
    session = ort.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    inputs = [
        torch.from_numpy(reference["wav"])[None],  # 21920 samples, the export used 16000
        0.3 * torch.randn(1, 7777, generator=generator),
        0.3 * torch.randn(2, 40000, generator=generator),
    ]
    for wav in inputs:
        with torch.no_grad():
            expected = encoder(wav).numpy()
        (units,) = session.run(None, {"wav": wav.numpy()})
        assert units.shape == expected.shape == (wav.shape[0], encoder.dim, (wav.shape[1] - 80) // 320)
        assert encoder.num_frames(wav.shape[1]) == units.shape[2]
        assert float(np.abs(units - expected).max()) < TOL


# ---------------------------------------------------------------- hubert-soft


class _SoftReference(torch.nn.Module):
    """bshall hubert-soft's layout and forward, restated at small sizes with torch's own
    ``nn.TransformerEncoderLayer`` (packed in_proj) as an independent reference."""

    def __init__(self, conv_dim=32, dim=128, heads=2, ffn=96, layers=3, out=24):
        super().__init__()
        nn = torch.nn
        self.feature_extractor = nn.Module()
        for i, (k, s) in enumerate([(10, 5)] + [(3, 2)] * 4 + [(2, 2)] * 2):
            setattr(self.feature_extractor, f"conv{i}", nn.Conv1d(1 if i == 0 else conv_dim, conv_dim, k, s, bias=False))
        self.feature_extractor.norm0 = nn.GroupNorm(conv_dim, conv_dim)
        self.feature_projection = nn.Module()
        self.feature_projection.norm = nn.LayerNorm(conv_dim)
        self.feature_projection.projection = nn.Linear(conv_dim, dim)
        self.positional_embedding = nn.Module()
        self.positional_embedding.conv = nn.utils.weight_norm(nn.Conv1d(dim, dim, 128, padding=64, groups=16), dim=2)
        self.norm = nn.LayerNorm(dim)
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, ffn, dropout=0.0, activation="gelu", batch_first=True)
            for _ in range(layers)
        )
        self.proj = nn.Linear(dim, out)
        self.masked_spec_embed = nn.Parameter(torch.rand(dim))
        self.label_embedding = nn.Embedding(100, out)
        with torch.no_grad():  # move norms and the weight-norm gain off their identity values
            for name, p in self.named_parameters():
                if "norm" in name or name.endswith("weight_g"):
                    p.add_(0.2 * torch.randn_like(p))

    def units(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [B, N] -> [B, frames, out], as HubertSoft.units on wav[:, None]."""
        x = torch.nn.functional.pad(wav[:, None], (40, 40))
        fe = self.feature_extractor
        x = torch.nn.functional.gelu(fe.norm0(fe.conv0(x)))
        for i in range(1, 7):
            x = torch.nn.functional.gelu(getattr(fe, f"conv{i}")(x))
        x = self.feature_projection.projection(self.feature_projection.norm(x.transpose(1, 2)))
        pos = self.positional_embedding.conv(x.transpose(1, 2))
        x = self.norm(x + torch.nn.functional.gelu(pos[:, :, :-1]).transpose(1, 2))
        for layer in self.encoder.layers:
            x = layer(x)
        return self.proj(x)


@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")  # bshall uses the classic weight_g/weight_v
def test_hubertsoft_matches_reference_layout(tmp_path, wav):
    torch.manual_seed(0)
    reference = _SoftReference().eval()
    state = {"module." + k: v for k, v in reference.state_dict().items()}  # DataParallel prefix
    torch.save(state, tmp_path / "hubert-soft.pt")
    encoder = load_content_encoder("hubertsoft", tmp_path / "hubert-soft.pt")
    assert encoder.body.config.num_heads == 2 and encoder.dim == 24
    for x in (wav, 0.3 * torch.randn(2, 5000)):
        with torch.no_grad():
            expected = reference.units(x)
            units = encoder(x)
        assert units.shape == (x.shape[0], 24, x.shape[1] // 320) == (x.shape[0], 24, encoder.num_frames(x.shape[1]))
        assert float((units.transpose(1, 2) - expected).abs().max()) < TOL


@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")
def test_hubertsoft_onnx_export_keeps_padding(tmp_path):
    import onnxruntime as ort

    torch.manual_seed(0)
    torch.save(_SoftReference().state_dict(), tmp_path / "hubert-soft.pt")
    encoder = load_content_encoder("hubertsoft", tmp_path / "hubert-soft.pt")
    _export_onnx(encoder, tmp_path / "soft.onnx")
    session = ort.InferenceSession(str(tmp_path / "soft.onnx"), providers=["CPUExecutionProvider"])
    for length in (320, 9999):
        x = 0.3 * torch.randn(1, length)
        with torch.no_grad():
            expected = encoder(x).numpy()
        (units,) = session.run(None, {"wav": x.numpy()})
        assert units.shape == expected.shape == (1, 24, length // 320)
        assert float(np.abs(units - expected).max()) < TOL


# ---------------------------------------------------------------- chinese-hubert-large (pre-LN)


def _small_prenorm_hf_model():
    from transformers import HubertConfig as HFConfig
    from transformers import HubertModel

    config = HFConfig(
        hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=96,
        conv_dim=(32,) * 7, conv_bias=True, feat_extract_norm="layer", do_stable_layer_norm=True,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, layer_norm_eps=1e-5,
    )
    torch.manual_seed(1)
    model = HubertModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.2 * torch.randn_like(p))
    return model


_HF_TO_FAIRSEQ = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.0."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.layer_norm\.", r"feature_extractor.conv_layers.\1.2.1."),
    (r"^feature_projection\.layer_norm\.", "layer_norm."),
    (r"^feature_projection\.projection\.", "post_extract_proj."),
    (r"^encoder\.pos_conv_embed\.conv\.", "encoder.pos_conv.0."),
    (r"\.attention\.", ".self_attn."),
    (r"^(encoder\.layers\.\d+)\.layer_norm\.", r"\1.self_attn_layer_norm."),
    (r"\.feed_forward\.intermediate_dense\.", ".fc1."),
    (r"\.feed_forward\.output_dense\.", ".fc2."),
    (r"^masked_spec_embed$", "mask_emb"),
]


def _to_fairseq_key(key: str) -> str:
    for pattern, replacement in _HF_TO_FAIRSEQ:
        key = re.sub(pattern, replacement, key)
    return key


def test_cnhubertlarge_prenorm_hf_and_fairseq_forms_match_transformers(tmp_path):
    model = _small_prenorm_hf_model()
    model.save_pretrained(tmp_path / "hf")
    state = model.state_dict()
    checkpoint = {
        "args": None,
        "cfg": {
            "model": {
                "_name": "hubert", "extractor_mode": "layer_norm", "layer_norm_first": True, "conv_bias": True,
                "encoder_layers": 3, "encoder_embed_dim": 64, "encoder_ffn_embed_dim": 96,
                "encoder_attention_heads": 4, "conv_pos": 16, "conv_pos_groups": 4, "activation_fn": "gelu",
                "conv_feature_layers": "[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2",
            },
            "task": {"normalize": True, "sample_rate": 16000},
        },
        "model": {_to_fairseq_key(k): v for k, v in state.items()},
    }
    torch.save(checkpoint, tmp_path / "cnhubert.pt")
    x = 0.3 * torch.randn(2, 6000, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x).last_hidden_state
    for path in (tmp_path / "hf", tmp_path / "cnhubert.pt"):
        encoder = load_content_encoder("cnhubertlarge", path)
        assert encoder.body.config.layer_norm_first and encoder.body.config.extractor_mode == "layer_norm"
        with torch.no_grad():
            units = encoder(x)
        assert units.shape == (2, 64, expected.shape[1])
        assert float((units.transpose(1, 2) - expected).abs().max()) < TOL


# ---------------------------------------------------------------- WavLM Base+


def _small_wavlm():
    from transformers import WavLMConfig, WavLMModel

    config = WavLMConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96, conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, num_buckets=32, max_bucket_distance=64,
        mask_time_prob=0.0,
    )
    torch.manual_seed(3)
    model = WavLMModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "gru_rel_pos" in name:
                p.add_(0.2 * torch.randn_like(p))
    return model


_HF_TO_ORIGINAL_WAVLM = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.0."),
    (r"^feature_extractor\.conv_layers\.0\.layer_norm\.", "feature_extractor.conv_layers.0.2."),
    (r"^feature_projection\.layer_norm\.", "layer_norm."),
    (r"^feature_projection\.projection\.", "post_extract_proj."),
    (r"^encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original0$", "encoder.pos_conv.0.weight_g"),
    (r"^encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original1$", "encoder.pos_conv.0.weight_v"),
    (r"^encoder\.pos_conv_embed\.conv\.", "encoder.pos_conv.0."),
    (r"\.attention\.gru_rel_pos_linear\.", ".self_attn.grep_linear."),
    (r"\.attention\.gru_rel_pos_const$", ".self_attn.grep_a"),
    (r"\.attention\.rel_attn_embed\.", ".self_attn.relative_attention_bias."),
    (r"\.attention\.", ".self_attn."),
    (r"^(encoder\.layers\.\d+)\.layer_norm\.", r"\1.self_attn_layer_norm."),
    (r"\.feed_forward\.intermediate_dense\.", ".fc1."),
    (r"\.feed_forward\.output_dense\.", ".fc2."),
]


def test_wavlm_hf_and_original_forms(tmp_path):
    model = _small_wavlm()
    model.save_pretrained(tmp_path / "hf")
    state = {}
    for key, value in model.state_dict().items():
        for pattern, replacement in _HF_TO_ORIGINAL_WAVLM:
            key = re.sub(pattern, replacement, key)
        state[key] = value
    cfg = {
        "extractor_mode": "default", "encoder_layers": 2, "encoder_embed_dim": 64, "encoder_ffn_embed_dim": 96,
        "encoder_attention_heads": 4, "activation_fn": "gelu", "layer_norm_first": False,
        "conv_feature_layers": "[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2", "conv_bias": False,
        "conv_pos": 16, "conv_pos_groups": 4, "relative_position_embedding": True, "num_buckets": 32,
        "max_distance": 64, "gru_rel_pos": True, "normalize": True,
    }
    torch.save({"cfg": cfg, "model": state}, tmp_path / "WavLM-Base+.pt")
    # quiet input: the conv GroupNorm's eps then makes the waveform normalisation visible
    x = 0.002 * torch.randn(2, 6000, generator=torch.Generator().manual_seed(4))
    normalised = torch.nn.functional.layer_norm(x, x.shape[-1:])
    with torch.no_grad():
        plain, expected_normalised = model(x).last_hidden_state, model(normalised).last_hidden_state
        hf_encoder = load_content_encoder("wavlmbase+", tmp_path / "hf")
        hf_units = hf_encoder(x)
        original_units = load_content_encoder("wavlmbase+", tmp_path / "WavLM-Base+.pt")(x)
    assert hf_units.shape == (2, 64, plain.shape[1]) == (2, hf_encoder.dim, hf_encoder.num_frames(6000))
    assert float((hf_units.transpose(1, 2) - plain).abs().max()) < TOL
    # cfg.normalize=True: so-vits-svc layer-normalises the waveform first
    assert float((original_units.transpose(1, 2) - expected_normalised).abs().max()) < TOL
    assert float((expected_normalised - plain).abs().max()) > 10 * TOL
