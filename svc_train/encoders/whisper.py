"""Whisper-PPG (``whisper-ppg``, ``whisper-ppg-large``): the encoder half of OpenAI Whisper.

As so-vits-svc 4.1's ``vencoder/WhisperPPG*.py``: the 16 kHz waveform is zero-padded
to Whisper's window (``n_audio_ctx * 320`` samples, 30 s for the released models),
turned into Whisper's log-mel spectrogram (400-point periodic-Hann STFT, hop 160,
centred with reflect padding, last frame dropped, power, librosa Slaney mel, log10,
floored at the window's maximum - 8, then ``(x + 4) / 4``), encoded, and the output
(one frame per 320 samples) is cut to ``N // 320`` frames.

so-vits-svc trims inputs longer than one window; here a longer input is encoded as
consecutive windows (each padded and normalised on its own, exactly what so-vits-svc
computes for each), so nothing is lost.

Checkpoints: OpenAI's ``medium.pt`` / ``large-v2.pt`` (``dims`` + ``model_state_dict``;
the decoder is ignored) and a Hugging Face folder (``openai/whisper-medium``:
``config.json`` + weights). Both are read without running code from the file.
Parameter names are OpenAI's (``conv1``, ``blocks.N.attn.query``, ``ln_post``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from svc_runtime.vocabulary import ENCODER_HOP, ENCODER_SAMPLE_RATE
from svc_train.encoders.layouts import CheckpointLayoutError, rename_keys, strip_prefix
from svc_train.encoders.loading import HF_WEIGHT_FILES, read_hf_folder
from svc_train.pitch.mel import MelConfig, mel_filterbank, windowed_dft_basis
from svc_train.safe_pickle import load_checkpoint

__all__ = [
    "WHISPER_MEL",
    "WhisperAudioEncoder",
    "WhisperConfig",
    "WhisperLogMel",
    "WhisperPPGEncoder",
    "load_whisper_ppg",
    "whisper_config_from_hf",
    "whisper_state_from_hf",
]

SAMPLE_RATE = ENCODER_SAMPLE_RATE
UNIT_HOP = ENCODER_HOP  # one unit per 320 samples (20 ms)
MEL_HOP = UNIT_HOP // 2  # Whisper's mel hop (10 ms); conv2 has stride 2
LOG_FLOOR_DB = 8.0  # log10 units below the window's maximum that are kept


def whisper_mel_config(n_mels: int) -> MelConfig:
    """Whisper's mel settings: 16 kHz, n_fft 400, hop 160, Slaney mel 0..8 kHz, centred framing."""
    return MelConfig(sample_rate=SAMPLE_RATE, n_fft=400, hop_length=MEL_HOP, n_mels=n_mels, fmin=0.0,
                     fmax=SAMPLE_RATE / 2, htk=False, framing="center")


WHISPER_MEL = whisper_mel_config(80)


@dataclass(frozen=True)
class WhisperConfig:
    """Sizes of a Whisper audio encoder (OpenAI ``ModelDimensions`` names in brackets).

    n_mels [n_mels], n_ctx [n_audio_ctx]: output frames per window (1500 = 30 s),
    d_model [n_audio_state], n_heads [n_audio_head], n_layers [n_audio_layer],
    ffn_dim: MLP width (4 * d_model in OpenAI's code).
    """

    n_mels: int
    n_ctx: int
    d_model: int
    n_heads: int
    n_layers: int
    ffn_dim: int
    eps: float = 1e-5

    def __post_init__(self) -> None:
        for field in ("n_mels", "n_ctx", "d_model", "n_heads", "n_layers", "ffn_dim"):
            if int(getattr(self, field)) <= 0:
                raise ValueError(f"{field} must be positive, got {getattr(self, field)}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")

    @property
    def window_samples(self) -> int:
        """Samples of one encoder window (480000 = 30 s for n_ctx 1500)."""
        return self.n_ctx * UNIT_HOP


class WhisperLogMel(nn.Module):
    """Whisper's normalised log-mel spectrogram. wav [B, W] (W a multiple of 160) -> [B, n_mels, W // 160].

    The STFT is a strided conv with a windowed DFT basis (plain ONNX ops); the floor
    ``max - 8`` is taken per row, as Whisper takes it per call.
    """

    def __init__(self, n_mels: int) -> None:
        super().__init__()
        self.config = whisper_mel_config(n_mels)
        self.register_buffer("dft_basis", torch.from_numpy(windowed_dft_basis(self.config.n_fft)), persistent=False)
        self.register_buffer("mel_basis", torch.from_numpy(mel_filterbank(self.config)), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        padded = F.pad(wav.unsqueeze(1), (cfg.pad_left, cfg.pad_right), mode="reflect")
        spectrum = F.conv1d(padded, self.dft_basis, stride=cfg.hop_length)[:, :, :-1]  # last frame dropped
        n_bins = cfg.n_fft // 2 + 1
        real, imag = spectrum[:, :n_bins], spectrum[:, n_bins:]
        mel = torch.matmul(self.mel_basis, real * real + imag * imag)
        log_spec = torch.log10(torch.clamp(mel, min=1e-10))
        floor = torch.amax(log_spec, dim=(1, 2), keepdim=True) - LOG_FLOOR_DB
        return (torch.maximum(log_spec, floor) + 4.0) / 4.0


class WhisperAttention(nn.Module):
    """Self-attention without mask; ``key`` has no bias (as in Whisper). x: [B, T, D] -> [B, T, D]."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], x.shape[1], self.n_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, frames = x.shape[0], x.shape[1]
        q = self._heads(self.query(x) * self.head_dim**-0.5)
        k = self._heads(self.key(x))
        v = self._heads(self.value(x))
        weights = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(batch, frames, self.n_heads * self.head_dim)
        return self.out(out)


class WhisperBlock(nn.Module):
    """Pre-LN block: x += attn(attn_ln(x)); x += mlp(mlp_ln(x))."""

    def __init__(self, config: WhisperConfig) -> None:
        super().__init__()
        self.attn = WhisperAttention(config.d_model, config.n_heads)
        self.attn_ln = nn.LayerNorm(config.d_model, eps=config.eps)
        self.mlp = nn.Sequential(nn.Linear(config.d_model, config.ffn_dim), nn.GELU(),
                                 nn.Linear(config.ffn_dim, config.d_model))
        self.mlp_ln = nn.LayerNorm(config.d_model, eps=config.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_ln(x))
        return x + self.mlp(self.mlp_ln(x))


class WhisperAudioEncoder(nn.Module):
    """Whisper's ``AudioEncoder``. mel [B, n_mels, 2 * n_ctx] -> hidden [B, n_ctx, d_model]."""

    def __init__(self, config: WhisperConfig) -> None:
        super().__init__()
        self.config = config
        self.conv1 = nn.Conv1d(config.n_mels, config.d_model, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(config.d_model, config.d_model, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(config.n_ctx, config.d_model))
        self.blocks = nn.ModuleList(WhisperBlock(config) for _ in range(config.n_layers))
        self.ln_post = nn.LayerNorm(config.d_model, eps=config.eps)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.positional_embedding
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x)


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """Whisper's fixed positional embedding [length, channels] (sin half, then cos half)."""
    if channels % 2:
        raise ValueError(f"Whisper's positional embedding needs an even width, got {channels}")
    increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-increment * torch.arange(channels // 2, dtype=torch.float32))
    scaled = torch.arange(length, dtype=torch.float32)[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=1)


class WhisperPPGEncoder(nn.Module):
    """so-vits-svc's Whisper-PPG. wav [B, N] float32 16 kHz -> units [B, d_model, N // 320].

    ``feature_extractor`` (the log-mel front end) is named so that fp16 graphs keep it fp32.
    """

    sample_rate = SAMPLE_RATE
    hop_size = UNIT_HOP
    min_samples = UNIT_HOP

    def __init__(self, name: str, encoder: WhisperAudioEncoder) -> None:
        super().__init__()
        self.name = name
        self.feature_extractor = WhisperLogMel(encoder.config.n_mels)
        self.encoder = encoder
        self.dim = encoder.config.d_model
        self.window = encoder.config.window_samples

    def num_frames(self, num_samples: int) -> int:
        """Unit frames for ``num_samples`` input samples (N // 320)."""
        return num_samples // UNIT_HOP

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """wav: [B, N] -> [B, dim, N // 320]; each window of ``self.window`` samples zero-padded and encoded."""
        if wav.dim() != 2:
            raise ValueError(f"wav must be [batch, samples], got shape {tuple(wav.shape)}")
        batch, n_samples = wav.shape[0], wav.shape[1]
        padded = F.pad(wav, (0, self.window - 1))
        n_windows = (n_samples + self.window - 1) // self.window
        windows = padded[:, : n_windows * self.window].reshape(-1, self.window)
        hidden = self.encoder(self.feature_extractor(windows))  # [B * W, n_ctx, D]
        hidden = hidden.reshape(batch, -1, self.dim)[:, : n_samples // UNIT_HOP]
        return hidden.transpose(1, 2)


# ---------------------------------------------------------------- checkpoints

_HF_RULES = [
    (r"^conv([12])\.(weight|bias)$", r"conv\1.\2"),
    (r"^embed_positions\.weight$", "positional_embedding"),
    (r"^layers\.(\d+)\.self_attn\.q_proj\.(weight|bias)$", r"blocks.\1.attn.query.\2"),
    (r"^layers\.(\d+)\.self_attn\.k_proj\.(weight|bias)$", r"blocks.\1.attn.key.\2"),
    (r"^layers\.(\d+)\.self_attn\.v_proj\.(weight|bias)$", r"blocks.\1.attn.value.\2"),
    (r"^layers\.(\d+)\.self_attn\.out_proj\.(weight|bias)$", r"blocks.\1.attn.out.\2"),
    (r"^layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)$", r"blocks.\1.attn_ln.\2"),
    (r"^layers\.(\d+)\.fc1\.(weight|bias)$", r"blocks.\1.mlp.0.\2"),
    (r"^layers\.(\d+)\.fc2\.(weight|bias)$", r"blocks.\1.mlp.2.\2"),
    (r"^layers\.(\d+)\.final_layer_norm\.(weight|bias)$", r"blocks.\1.mlp_ln.\2"),
    (r"^layer_norm\.(weight|bias)$", r"ln_post.\1"),
]
_NOTHING = re.compile(r"(?!)")  # no key is dropped


def _encoder_part(state: Mapping[str, Any], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def whisper_state_from_hf(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers ``WhisperModel`` / ``WhisperForConditionalGeneration`` weights -> encoder keys (OpenAI names)."""
    state = strip_prefix(state, "model.")
    encoder = _encoder_part(state, "encoder.")
    if not encoder:
        raise CheckpointLayoutError("no encoder.* weights: not a Whisper model")
    return rename_keys(encoder, _HF_RULES, _NOTHING, "Hugging Face Whisper encoder")


def whisper_config_from_hf(config: Mapping[str, Any]) -> WhisperConfig:
    """transformers ``WhisperConfig`` fields (config.json) -> `WhisperConfig`."""
    if config.get("model_type") != "whisper":
        raise CheckpointLayoutError(f"config.json model_type={config.get('model_type')!r}: expected 'whisper'")
    activation = config.get("activation_function", "gelu")
    if activation != "gelu":
        raise CheckpointLayoutError(f"activation_function={activation!r} is not supported (only 'gelu')")
    if config.get("scale_embedding", False):
        raise CheckpointLayoutError("scale_embedding=True is not supported")
    try:
        return WhisperConfig(
            n_mels=int(config.get("num_mel_bins", 80)),
            n_ctx=int(config.get("max_source_positions", 1500)),
            d_model=int(config["d_model"]),
            n_heads=int(config["encoder_attention_heads"]),
            n_layers=int(config["encoder_layers"]),
            ffn_dim=int(config["encoder_ffn_dim"]),
        )
    except KeyError as error:
        raise CheckpointLayoutError(f"config.json lacks the field {error.args[0]!r}") from error
    except (TypeError, ValueError) as error:
        raise CheckpointLayoutError(f"config.json: {error}") from error


def whisper_config_from_dims(dims: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> WhisperConfig:
    """OpenAI ``ModelDimensions`` (a dict in the checkpoint) -> `WhisperConfig`.

    The MLP width is 4 * n_audio_state in OpenAI's code; a checkpoint's own tensor wins.
    """
    try:
        d_model = int(dims["n_audio_state"])
        mlp = state.get("blocks.0.mlp.0.weight")
        return WhisperConfig(
            n_mels=int(dims["n_mels"]), n_ctx=int(dims["n_audio_ctx"]), d_model=d_model,
            n_heads=int(dims["n_audio_head"]), n_layers=int(dims["n_audio_layer"]),
            ffn_dim=int(mlp.shape[0]) if isinstance(mlp, torch.Tensor) and mlp.dim() == 2 else 4 * d_model,
        )
    except KeyError as error:
        raise CheckpointLayoutError(f"dims lacks {error.args[0]!r}") from error
    except (TypeError, ValueError) as error:
        raise CheckpointLayoutError(f"dims: {error}") from error


def build_whisper_encoder(config: WhisperConfig, state: Mapping[str, torch.Tensor], source: str) -> WhisperAudioEncoder:
    """`WhisperAudioEncoder` with ``state`` loaded strictly (float32); errors name ``source``."""
    model = WhisperAudioEncoder(config)
    expected = model.state_dict()
    state = dict(state)
    if "positional_embedding" not in state:  # a stripped checkpoint: the embedding is fixed, rebuild it
        state["positional_embedding"] = expected["positional_embedding"]
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointLayoutError(
            f"{source}: Whisper encoder weights do not match the dims (missing: {', '.join(missing[:6]) or '-'}; "
            f"unexpected: {', '.join(unexpected[:6]) or '-'})"
        )
    for key, tensor in expected.items():
        if not isinstance(state[key], torch.Tensor) or tuple(state[key].shape) != tuple(tensor.shape):
            shape = tuple(state[key].shape) if isinstance(state[key], torch.Tensor) else type(state[key]).__name__
            raise CheckpointLayoutError(f"{source}: {key} has shape {shape}, the dims imply {tuple(tensor.shape)}")
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
    return model.eval()


def load_whisper_ppg(path: Path, name: str = "whisper-ppg") -> WhisperPPGEncoder:
    """Whisper-PPG from OpenAI's ``medium.pt`` / ``large-v2.pt`` or a Hugging Face folder; eval mode."""
    if path.is_dir() or path.name in HF_WEIGHT_FILES or path.suffix == ".safetensors":
        config_dict, raw = read_hf_folder(path)
        try:
            config, state = whisper_config_from_hf(config_dict), whisper_state_from_hf(raw)
        except CheckpointLayoutError as error:
            raise CheckpointLayoutError(f"{path}: {error}") from None
        encoder = build_whisper_encoder(config, state, str(path))
        return WhisperPPGEncoder(name, encoder).eval()
    checkpoint = load_checkpoint(path)
    if (
        not isinstance(checkpoint, Mapping)
        or not isinstance(checkpoint.get("dims"), Mapping)
        or not isinstance(checkpoint.get("model_state_dict"), Mapping)
    ):
        raise CheckpointLayoutError(
            f"{path}: not an OpenAI Whisper checkpoint (expected {{'dims': dict, 'model_state_dict': state_dict}})"
        )
    state = _encoder_part(checkpoint["model_state_dict"], "encoder.")
    if not state:
        raise CheckpointLayoutError(f"{path}: model_state_dict has no encoder.* weights")
    try:
        config = whisper_config_from_dims(checkpoint["dims"], state)
    except CheckpointLayoutError as error:
        raise CheckpointLayoutError(f"{path}: {error}") from None
    return WhisperPPGEncoder(name, build_whisper_encoder(config, state, str(path))).eval()
