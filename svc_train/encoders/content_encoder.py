"""so-vits-svc speech encoders by name: `load_content_encoder(name, checkpoint_path)`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from svc_runtime.vocabulary import ENCODER_SAMPLE_RATE
from svc_train.encoders.hubert import HubertEncoder
from svc_train.encoders.layouts import CheckpointLayoutError
from svc_train.encoders.loading import (
    HF_WEIGHT_FILES,
    LoadedHubert,
    load_fairseq_hubert,
    load_hf_hubert,
    load_hubert_soft,
)

__all__ = [
    "ENCODER_SPECS",
    "ContentEncoder",
    "EncoderSpec",
    "is_onnx_file",
    "load_content_encoder",
    "min_samples",
    "same_units",
]

SAMPLE_RATE = ENCODER_SAMPLE_RATE


@dataclass(frozen=True)
class EncoderSpec:
    """How so-vits-svc 4.1 runs one named encoder (the single registry: `ENCODER_SPECS`).

    kind: the network and loader: "hubert" (fairseq or HF form), "hubert-soft", "wavlm",
        "whisper", "dphubert", or "onnx" (an ONNX file run by ONNX Runtime).
    dim: so-vits-svc's unit size for this name (``ssl_dim``); a checkpoint's own size wins.
    output_layer: 1-based transformer block whose output is used (fairseq
        ``output_layer``); None = all blocks (plus the final LayerNorm of a pre-LN model).
    final_proj: apply the checkpoint's ``final_proj`` (hubert-soft: ``proj``).
    forms: the checkpoint forms that load ("fairseq", "hf", "hubert-soft", "unilm",
        "openai", "dphubert", "onnx").
    expected_file: the file so-vits-svc looks for, and where users get it.
    pad_samples: zeros added on both sides of the waveform first (hubert-soft: 40).
    units_of: for an "-onnx" name, the torch encoder whose units it gives.
    """

    name: str
    kind: str
    dim: int
    output_layer: int | None
    final_proj: bool
    forms: tuple[str, ...]
    expected_file: str
    pad_samples: int = 0
    units_of: str | None = None

    @property
    def units_family(self) -> str:
        """Encoders with the same family give the same units (``vec768l12`` and ``vec768l12-onnx``)."""
        return self.units_of or self.name


_CONTENTVEC = (
    "pretrain/checkpoint_best_legacy_500.pt (ContentVec, fairseq form) or a Hugging Face folder "
    "with config.json + weights such as lengyue233/content-vec-best"
)
_HUBERT_FORMS = ("fairseq", "hf")


def _onnx_variant(base: EncoderSpec, file: str) -> EncoderSpec:
    return EncoderSpec(
        f"{base.name}-onnx", "onnx", base.dim, base.output_layer, base.final_proj, ("onnx",),
        f"pretrain/{file} (an ONNX export of {base.name}: input [1, 1, samples] 16 kHz, output [1, frames, {base.dim}])",
        units_of=base.name,
    )


_TORCH_SPECS = (
    EncoderSpec("vec768l12", "hubert", 768, 12, False, _HUBERT_FORMS, _CONTENTVEC),
    EncoderSpec("vec256l9", "hubert", 256, 9, True, _HUBERT_FORMS, _CONTENTVEC),
    EncoderSpec("vec768l9", "hubert", 768, 9, False, _HUBERT_FORMS, _CONTENTVEC),
    EncoderSpec("vec256l12", "hubert", 256, 12, True, _HUBERT_FORMS, _CONTENTVEC),
    EncoderSpec(
        "hubertsoft", "hubert-soft", 256, None, True, ("hubert-soft",),
        "pretrain/hubert-soft-0d54a1f4.pt (bshall/hubert release hubert-soft)", pad_samples=40,
    ),
    EncoderSpec(
        "cnhubertlarge", "hubert", 1024, None, False, _HUBERT_FORMS,
        "pretrain/chinese-hubert-large-fairseq-ckpt.pt (TencentGameMate chinese-hubert-large, fairseq form) "
        "or its Hugging Face folder",
    ),
    EncoderSpec(
        "wavlmbase+", "wavlm", 768, None, False, ("unilm", "hf"),
        "pretrain/WavLM-Base+.pt (microsoft/unilm WavLM release) or the Hugging Face folder microsoft/wavlm-base-plus",
    ),
    EncoderSpec(
        "whisper-ppg", "whisper", 1024, None, False, ("openai", "hf"),
        "pretrain/medium.pt (OpenAI Whisper medium: dims + model_state_dict) or the Hugging Face folder "
        "openai/whisper-medium",
    ),
    EncoderSpec(
        "whisper-ppg-large", "whisper", 1280, None, False, ("openai", "hf"),
        "pretrain/large-v2.pt (OpenAI Whisper large-v2: dims + model_state_dict) or the Hugging Face folder "
        "openai/whisper-large-v2",
    ),
    EncoderSpec(
        "dphubert", "dphubert", 768, None, False, ("dphubert",),
        "pretrain/DPHuBERT-sp0.75.pth (pyf98/DPHuBERT release: config + state_dict)",
    ),
)
_BY_NAME = {spec.name: spec for spec in _TORCH_SPECS}
_ONNX_SPECS = tuple(
    _onnx_variant(_BY_NAME[base], file)
    for base, file in (
        ("vec768l12", "vec-768-layer-12.onnx"),
        ("vec768l9", "vec-768-layer-9.onnx"),
        ("vec256l9", "vec-256-layer-9.onnx"),
        ("vec256l12", "vec-256-layer-12.onnx"),
        ("hubertsoft", "hubert-soft.onnx"),
    )
)

ENCODER_SPECS: dict[str, EncoderSpec] = {spec.name: spec for spec in _TORCH_SPECS + _ONNX_SPECS}
"""Every speech encoder name this toolkit runs, in so-vits-svc's spelling."""


def same_units(name_a: str, name_b: str) -> bool:
    """True when two encoder names give the same units (equal, or one is the other's "-onnx" file)."""
    spec_a, spec_b = ENCODER_SPECS.get(name_a), ENCODER_SPECS.get(name_b)
    if spec_a is None or spec_b is None:
        return name_a == name_b
    return spec_a.units_family == spec_b.units_family


def is_onnx_file(path: str | Path) -> bool:
    """An encoder checkpoint that is an ONNX graph (by its suffix)."""
    return Path(path).suffix.lower() == ".onnx"


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
    ``dim`` (an attribute) comes from the checkpoint, ``hop_size`` is 320. Names and
    checkpoint forms: `ENCODER_SPECS`. An ``.onnx`` file loads for an "-onnx" name (or
    its torch name, e.g. vec768l12) as a module that runs the graph in ONNX Runtime.

    Raises:
        ValueError: unknown name, or a checkpoint of the wrong kind for it.
        FileNotFoundError: no checkpoint at the path (the message says which file is needed).
        CheckpointLayoutError: the checkpoint does not fit the encoder.
        svc_train.safe_pickle.UnsafePickleError: the pickle names a class outside the allow-list.
    """
    spec = ENCODER_SPECS.get(name)
    if spec is None:
        raise ValueError(f"unknown speech encoder {name!r}; supported: {', '.join(ENCODER_SPECS)}")
    path = Path(checkpoint_path)
    if not path.exists():
        raise _missing_file_error(spec, path)

    if is_onnx_file(path):
        onnx_name = name if spec.kind == "onnx" else f"{name}-onnx"
        if onnx_name not in ENCODER_SPECS:
            raise ValueError(f"{path} is an ONNX graph; {name} loads from {spec.expected_file}")
        from svc_train.encoders.onnx_file import load_onnx_encoder

        return load_onnx_encoder(path, name)
    if spec.kind == "onnx":
        raise ValueError(f"{name} runs an ONNX graph (*.onnx); {path} is not one. It needs {spec.expected_file}")
    if spec.kind == "whisper":
        from svc_train.encoders.whisper import load_whisper_ppg

        return load_whisper_ppg(path, name=name)
    if spec.kind == "dphubert":
        from svc_train.encoders.dphubert import load_dphubert

        return load_dphubert(path, name=name)
    if spec.kind == "wavlm":
        from svc_train.encoders.wavlm import load_wavlm

        return load_wavlm(path, name=name)

    loaded = load_hubert_soft(path) if spec.kind == "hubert-soft" else _load_hubert_body(path)
    body = loaded.model
    if spec.output_layer is not None and spec.output_layer > body.config.num_layers:
        raise CheckpointLayoutError(
            f"{name} uses transformer layer {spec.output_layer}, but {path} has only {body.config.num_layers} layers"
        )
    if spec.final_proj and body.final_proj is None:
        raise CheckpointLayoutError(f"{name} needs the checkpoint's final_proj, and {path} has none")
    return ContentEncoder(name, body, spec.output_layer, spec.final_proj, spec.pad_samples).eval()
