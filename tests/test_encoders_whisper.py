"""Whisper-PPG (whisper-ppg / whisper-ppg-large): units against transformers' WhisperEncoder and
WhisperFeatureExtractor on small random configurations, both checkpoint forms, the ONNX graph,
a malicious checkpoint, and a features -> train -> export -> convert round trip."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from svc_train import load_content_encoder
from svc_train.encoders import ENCODER_SPECS, CheckpointLayoutError
from svc_train.safe_pickle import UnsafePickleError

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.usefixtures("single_thread")

N_CTX = 50  # units per window: 50 * 320 = 16000 samples (1 s) instead of Whisper's 30 s
D_MODEL = 64


def _hf_model(seed: int = 0, n_mels: int = 80):
    config = transformers.WhisperConfig(
        num_mel_bins=n_mels, d_model=D_MODEL, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=96,
        decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=32, max_source_positions=N_CTX,
        max_target_positions=16, vocab_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        decoder_start_token_id=1,
    )
    torch.manual_seed(seed)
    model = transformers.WhisperModel(config).eval()
    with torch.no_grad():  # larger than the default init, so that every block moves the output
        for name, parameter in model.named_parameters():
            if "layer_norm.weight" in name:
                parameter.normal_(1.0, 0.1)
            elif "embed_positions" not in name:
                parameter.normal_(0.0, 0.15 if parameter.dim() > 1 else 0.05)
    return model


@pytest.fixture(scope="module")
def hf_whisper(tmp_path_factory) -> tuple[object, Path]:
    """A small random transformers WhisperModel and its saved folder (config.json + model.safetensors)."""
    model = _hf_model()
    folder = tmp_path_factory.mktemp("whisper") / "hf"
    model.save_pretrained(folder)
    return model, folder


def _openai_checkpoint(model, path: Path, dtype=torch.float32) -> Path:
    """The same weights as OpenAI's `medium.pt` holds them: dims + model_state_dict with OpenAI's names."""
    config = model.config
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("decoder."):
            state["decoder." + key[len("decoder."):].replace("layers.", "blocks.")] = value.to(dtype)
            continue
        name = key[len("encoder."):]
        name = name.replace("embed_positions.weight", "positional_embedding").replace("layer_norm.", "ln_post.")
        name = name.replace("layers.", "blocks.").replace(".self_attn.q_proj", ".attn.query")
        name = name.replace(".self_attn.k_proj", ".attn.key").replace(".self_attn.v_proj", ".attn.value")
        name = name.replace(".self_attn.out_proj", ".attn.out").replace(".self_attn_ln_post", ".attn_ln")
        name = name.replace(".final_ln_post", ".mlp_ln").replace(".fc1", ".mlp.0").replace(".fc2", ".mlp.2")
        state["encoder." + name] = value.to(dtype)
    dims = {"n_mels": config.num_mel_bins, "n_audio_ctx": config.max_source_positions, "n_audio_state": config.d_model,
            "n_audio_head": config.encoder_attention_heads, "n_audio_layer": config.encoder_layers,
            "n_vocab": config.vocab_size, "n_text_ctx": config.max_target_positions, "n_text_state": config.d_model,
            "n_text_head": config.decoder_attention_heads, "n_text_layer": config.decoder_layers}
    torch.save({"dims": dims, "model_state_dict": state}, path)
    return path


def _wave(batch: int, samples: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / 16000.0
    tone = sum(torch.sin(2 * np.pi * 190.0 * k * t) / k for k in range(1, 6)) * 0.2
    return tone.repeat(batch, 1) * (0.5 + torch.rand(batch, 1, generator=g)) + 0.01 * torch.randn(
        batch, samples, generator=g)


def _reference_units(model, wav: torch.Tensor) -> torch.Tensor:
    """transformers' feature extractor + encoder, one padded window of N_CTX * 320 samples at a time."""
    window = N_CTX * 320
    extractor = transformers.WhisperFeatureExtractor(feature_size=model.config.num_mel_bins, sampling_rate=16000,
                                                     hop_length=160, chunk_length=window // 16000, n_fft=400)
    outputs = []
    for item in wav.numpy():
        pieces = []
        for start in range(0, item.size, window):
            mel = extractor(item[start:start + window], sampling_rate=16000, padding="max_length",
                            return_tensors="pt").input_features
            with torch.no_grad():
                pieces.append(model.encoder(mel).last_hidden_state[0])
        outputs.append(torch.cat(pieces)[: item.size // 320])
    return torch.stack(outputs).transpose(1, 2)


def test_registry_widths():
    assert (ENCODER_SPECS["whisper-ppg"].dim, ENCODER_SPECS["whisper-ppg-large"].dim) == (1024, 1280)
    assert ENCODER_SPECS["whisper-ppg"].forms == ("openai", "hf") and ENCODER_SPECS["whisper-ppg"].kind == "whisper"


def test_log_mel_matches_transformers_feature_extractor(hf_whisper):
    _, folder = hf_whisper
    encoder = load_content_encoder("whisper-ppg", folder)
    wav = _wave(2, 12345, 1)
    padded = torch.nn.functional.pad(wav, (0, 16000 - 12345))
    extractor = transformers.WhisperFeatureExtractor(feature_size=80, sampling_rate=16000, hop_length=160,
                                                     chunk_length=1, n_fft=400)
    reference = extractor(list(wav.numpy()), sampling_rate=16000, padding="max_length",
                          return_tensors="pt").input_features
    mel = encoder.feature_extractor(padded)
    assert mel.shape == reference.shape == (2, 80, 100)
    assert (mel - reference).abs().max() < 5e-5  # measured 5.8e-6 (conv DFT vs FFT, float32)


@pytest.mark.parametrize("samples", [12345, 21920, 640])
def test_units_match_transformers_whisper_encoder(hf_whisper, samples):
    model, folder = hf_whisper
    encoder = load_content_encoder("whisper-ppg", folder)
    assert (encoder.dim, encoder.hop_size, encoder.window) == (D_MODEL, 320, 16000)
    wav = _wave(2, samples, 2)
    with torch.no_grad():
        units = encoder(wav)
    reference = _reference_units(model, wav)
    assert units.shape == (2, D_MODEL, samples // 320) == reference.shape
    assert (units - reference).abs().max() < 1e-4  # measured ~1e-6 at peak ~1.6
    assert reference.abs().max() > 0.5


def test_input_is_padded_to_the_window_and_cut(hf_whisper):
    """A short input's units depend on the zeros after it (global attention over the padded window),
    and the units of a longer input's first window do not depend on what follows the window."""
    _, folder = hf_whisper
    encoder = load_content_encoder("whisper-ppg", folder)
    wav = _wave(1, 32000, 3)
    with torch.no_grad():
        whole = encoder(wav)
        first = encoder(wav[:, :16000])
        short = encoder(wav[:, :8000])
    assert (whole[:, :, :50] - first).abs().max() < 1e-5  # the same window, batched with the next one
    assert (short - first[:, :, :25]).abs().max() > 1e-3


def test_openai_checkpoint_loads_like_the_hf_folder(hf_whisper, tmp_path):
    model, folder = hf_whisper
    path = _openai_checkpoint(model, tmp_path / "medium.pt")
    wav = _wave(1, 9000, 4)
    with torch.no_grad():
        assert torch.equal(load_content_encoder("whisper-ppg", path)(wav), load_content_encoder("whisper-ppg", folder)(wav))
    half = load_content_encoder("whisper-ppg-large", _openai_checkpoint(model, tmp_path / "half.pt", torch.float16))
    assert half.encoder.conv1.weight.dtype == torch.float32  # OpenAI ships fp16 weights; we run fp32
    with torch.no_grad():
        assert (half(wav) - load_content_encoder("whisper-ppg", folder)(wav)).abs().max() < 5e-2


def test_checkpoint_errors_name_the_problem(hf_whisper, tmp_path):
    model, _ = hf_whisper
    path = _openai_checkpoint(model, tmp_path / "medium.pt")
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["dims"]["n_audio_layer"] = 3
    torch.save(checkpoint, tmp_path / "deeper.pt")
    with pytest.raises(CheckpointLayoutError, match=r"deeper.pt: .*missing: blocks\.2\."):
        load_content_encoder("whisper-ppg", tmp_path / "deeper.pt")
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointLayoutError, match="not an OpenAI Whisper checkpoint"):
        load_content_encoder("whisper-ppg", tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="medium.pt"):
        load_content_encoder("whisper-ppg", tmp_path / "nowhere.pt")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_checkpoints_are_refused(hf_whisper, tmp_path):
    model, folder = hf_whisper
    marker = tmp_path / "pwned"
    state = torch.load(_openai_checkpoint(model, tmp_path / "medium.pt"), weights_only=True)
    state["extra"] = _Payload(marker)
    torch.save(state, tmp_path / "evil.pt")
    with pytest.raises(UnsafePickleError, match="posix.system|os.system"):
        load_content_encoder("whisper-ppg", tmp_path / "evil.pt")
    hf = tmp_path / "hf_evil"
    hf.mkdir()
    (hf / "config.json").write_text((folder / "config.json").read_text())
    torch.save({"encoder.conv1.weight": torch.zeros(1), "x": _Payload(marker)}, hf / "pytorch_model.bin")
    with pytest.raises(Exception, match="(?i)weights_only|unpickl|unsupported global"):
        load_content_encoder("whisper-ppg", hf)
    assert not marker.exists()


def test_onnx_graph_matches_torch(hf_whisper, tmp_path):
    from svc_export.onnx_export import export_onnx, torch_parity
    from svc_export.plans import speech_encoder_plan

    _, folder = hf_whisper
    encoder = load_content_encoder("whisper-ppg", folder)
    plan = speech_encoder_plan(encoder, D_MODEL)
    export_onnx(plan, tmp_path / "speech_encoder.onnx")
    results = torch_parity(plan, tmp_path / "speech_encoder.onnx")  # 16000, 21920 (two windows, batch 2), 6400
    assert [r.length for r in results] == [16000, 21920, 6400]
    assert all(r.max_abs_error < 1e-4 for r in results), results  # measured 2e-6 .. 8e-6 (tolerance 1e-3)


@pytest.mark.timeout(300)
def test_round_trip_features_train_export_convert(hf_whisper, tmp_path):
    from encoder_roundtrip import check_round_trip, round_trip

    _, folder = hf_whisper
    check_round_trip(round_trip(tmp_path, "whisper-ppg", folder, D_MODEL), "whisper-ppg", D_MODEL)
