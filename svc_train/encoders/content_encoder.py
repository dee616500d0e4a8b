"""so-vits-svc speech encoders by name: `load_content_encoder(name, checkpoint_path)`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from svc_train.encoders.hubert import HubertEncoder
from svc_train.encoders.layouts import CheckpointLayoutError
from svc_train.encoders.loading import (
    HF_WEIGHT_FILES,
    LoadedHubert,
    load_fairseq_hubert,
    load_hf_hubert,
    load_hubert_soft,
)

__all__ = ["ENCODER_SPECS", "ContentEncoder", "EncoderSpec", "load_content_encoder", "min_samples"]

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class EncoderSpec:
    """How so-vits-svc 4.1 runs one named encoder.

    output_layer: 1-based transformer block whose output is used (fairseq
        ``output_layer``); None = all blocks (plus the final LayerNorm of a pre-LN model).
    final_proj: apply the checkpoint's ``final_proj`` (hubert-soft: ``proj``).
    pad_samples: zeros added on both sides of the waveform first (hubert-soft: 40).
    family: "hubert" (fairseq or HF form), "hubert-soft", or "wavlm".
    expected_file: the file so-vits-svc looks for, and where users get it.
    """

    name: str
    family: str
    output_layer: int | None
    final_proj: bool
    expected_file: str
    pad_samples: int = 0


_CONTENTVEC = (
    "pretrain/checkpoint_best_legacy_500.pt (ContentVec, fairseq form) or a Hugging Face folder "
    "with config.json + weights such as lengyue233/content-vec-best"
)

ENCODER_SPECS: dict[str, EncoderSpec] = {
    spec.name: spec
    for spec in (
        EncoderSpec("vec768l12", "hubert", 12, False, _CONTENTVEC),
        EncoderSpec("vec256l9", "hubert", 9, True, _CONTENTVEC),
        EncoderSpec("vec768l9", "hubert", 9, False, _CONTENTVEC),
        EncoderSpec("vec256l12", "hubert", 12, True, _CONTENTVEC),
        EncoderSpec(
            "hubertsoft", "hubert-soft", None, True,
            "pretrain/hubert-soft-0d54a1f4.pt (bshall/hubert release hubert-soft)", pad_samples=40,
        ),
        EncoderSpec(
            "cnhubertlarge", "hubert", None, False,
            "pretrain/chinese-hubert-large-fairseq-ckpt.pt (TencentGameMate chinese-hubert-large, fairseq form) "
            "or its Hugging Face folder",
        ),
        EncoderSpec(
            "wavlmbase+", "wavlm", None, False,
            "pretrain/WavLM-Base+.pt (microsoft/unilm WavLM release) or the Hugging Face folder microsoft/wavlm-base-plus",
        ),
    )
}

_NOT_SUPPORTED = {
    "whisper-ppg": "Whisper-PPG encoders are not implemented in this toolkit",
    "whisper-ppg-large": "Whisper-PPG encoders are not implemented in this toolkit",
    "dphubert": "DPHuBERT is not implemented in this toolkit",
}


def min_samples(body: HubertEncoder, pad_samples: int = 0) -> int:
    """Fewest input samples that give one output frame (400 for the wav2vec 2.0 conv stack)."""
    need = 1
    for _, kernel, stride in reversed(body.config.conv_layers):
        need = (need - 1) * stride + kernel
    return max(1, need - 2 * pad_samples)


class ContentEncoder(nn.Module):
    """A named so-vits-svc content encoder. wav [B, N] float32 16 kHz -> units [B, dim, frames].

    The waveform is used as it is (no gain or mean/variance normalisation; so-vits-svc
    applies none for these encoders); hubert-soft pads 40 zeros on each side.
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, name: str, body: HubertEncoder, output_layer: int | None, final_proj: bool, pad_samples: int = 0):
        super().__init__()
        self.name = name
        self.body = body
        self.output_layer = output_layer
        self.use_final_proj = final_proj
        self.pad_samples = pad_samples
        self.dim = body.config.final_proj_dim if final_proj else body.config.embed_dim
        self.hop_size = body.config.hop_size
        self.min_samples = min_samples(body, pad_samples)

    def num_frames(self, num_samples: int) -> int:
        """Unit frames for ``num_samples`` input samples ((N - 80) // 320 for vec*, N // 320 for hubert-soft)."""
        return self.body.config.num_frames(num_samples + 2 * self.pad_samples)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """wav: [B, N] float32 16 kHz mono -> units [B, dim, frames] (frames ~ N / 320)."""
        if wav.dim() != 2:
            raise ValueError(f"wav must be [batch, samples], got shape {tuple(wav.shape)}")
        if not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export() and wav.shape[-1] < self.min_samples:
            raise ValueError(f"wav has {wav.shape[-1]} samples; {self.name} needs at least {self.min_samples}")
        if self.pad_samples:
            wav = F.pad(wav, (self.pad_samples, self.pad_samples))
        hidden = self.body(wav, self.output_layer)
        if self.use_final_proj:
            hidden = self.body.project(hidden)
        return hidden.transpose(1, 2)


def _missing_file_error(spec: EncoderSpec, path: Path) -> FileNotFoundError:
    return FileNotFoundError(
        f"{spec.name} needs {spec.expected_file}; nothing found at {path}. "
        "Pretrained weights are not downloaded automatically: fetch the file and pass its path."
    )


def _load_hubert_body(path: Path) -> LoadedHubert:
    if path.is_dir() or path.name in HF_WEIGHT_FILES or path.suffix == ".safetensors":
        return load_hf_hubert(path)
    return load_fairseq_hubert(path)


def load_content_encoder(name: str, checkpoint_path: str | Path) -> nn.Module:
    """so-vits-svc encoder ``name`` from ``checkpoint_path``, in eval mode.

    Returns a module mapping wav [B, N] float32 16 kHz -> units [B, dim, frames];
    ``dim`` (an attribute) comes from the checkpoint. Names: vec768l12, vec256l9,
    vec768l9, vec256l12 (ContentVec/HuBERT, fairseq or HF form), hubertsoft,
    cnhubertlarge (fairseq or HF form), wavlmbase+ (original or HF form).

    Raises:
        ValueError: unknown or unsupported name.
        FileNotFoundError: no checkpoint at the path (the message says which file is needed).
        CheckpointLayoutError: the checkpoint does not fit the encoder.
        svc_train.safe_pickle.UnsafePickleError: the pickle names a class outside the allow-list.
    """
    if name in _NOT_SUPPORTED:
        raise ValueError(f"speech encoder {name!r}: {_NOT_SUPPORTED[name]}")
    if name.endswith("-onnx") and name[: -len("-onnx")] in ENCODER_SPECS:
        raise ValueError(
            f"speech encoder {name!r} is so-vits-svc's ONNX variant; load {name[:-5]!r} from the torch checkpoint "
            "(svc-export builds the ONNX graph)"
        )
    spec = ENCODER_SPECS.get(name)
    if spec is None:
        raise ValueError(f"unknown speech encoder {name!r}; supported: {', '.join(ENCODER_SPECS)}")
    path = Path(checkpoint_path)
    if not path.exists():
        raise _missing_file_error(spec, path)

    if spec.family == "wavlm":
        from svc_train.encoders.wavlm import load_wavlm

        return load_wavlm(path, name=name)

    loaded = load_hubert_soft(path) if spec.family == "hubert-soft" else _load_hubert_body(path)
    body = loaded.model
    if spec.output_layer is not None and spec.output_layer > body.config.num_layers:
        raise CheckpointLayoutError(
            f"{name} uses transformer layer {spec.output_layer}, but {path} has only {body.config.num_layers} layers"
        )
    if spec.final_proj and body.final_proj is None:
        raise CheckpointLayoutError(f"{name} needs the checkpoint's final_proj, and {path} has none")
    return ContentEncoder(name, body, spec.output_layer, spec.final_proj, spec.pad_samples).eval()
