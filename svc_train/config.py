"""so-vits-svc 4.1 `config.json` as typed, validated, frozen dataclasses.

`SvcConfig.load(path)` reads a config as so-vits-svc writes it (sections `train`, `data`,
`model`, `spk`); `to_dict()` gives back the same JSON layout. Keys that so-vits-svc 4.0
configs lack and 4.1 reads with a fallback (the model's keyword defaults, `infer_tool`'s
`... if ... is not None else ...`) get the same defaults here; every other key is
required. Unknown keys are kept (so-vits-svc ignores them) and written back unchanged.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from svc_runtime.atomic import atomic_output
from svc_runtime.schema import read_dataclass, to_mapping
from svc_runtime.vocabulary import UnitInterpolateMode

KNOWN_VOCODERS = ("nsf-hifigan", "nsf-snake-hifigan")


class ConfigError(ValueError):
    """A config.json that so-vits-svc 4.1 could not use; the message names file, field and fix."""


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """`train` section (fields in the 4.1 template's order)."""

    log_interval: int
    eval_interval: int
    seed: int
    epochs: int
    learning_rate: float
    betas: tuple[float, float]
    eps: float
    batch_size: int
    fp16_run: bool
    half_type: str = "fp16"
    lr_decay: float
    segment_size: int
    init_lr_ratio: float
    warmup_epochs: int
    c_mel: float
    c_kl: float
    use_sr: bool
    max_speclen: int
    port: str
    keep_ckpts: int
    all_in_mem: bool = False
    vol_aug: bool = False
    extras: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """`data` section. `unit_interpolate_mode` defaults to "left" as so-vits-svc's inference does."""

    training_files: str
    validation_files: str
    max_wav_value: float
    sampling_rate: int
    filter_length: int
    hop_length: int
    win_length: int
    n_mel_channels: int
    mel_fmin: float
    mel_fmax: Optional[float]
    unit_interpolate_mode: UnitInterpolateMode = "left"
    extras: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """`model` section; the defaults are SynthesizerTrn's keyword defaults in so-vits-svc 4.1."""

    inter_channels: int
    hidden_channels: int
    filter_channels: int
    n_heads: int
    n_layers: int
    kernel_size: int
    p_dropout: float
    resblock: str
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    upsample_rates: tuple[int, ...]
    upsample_initial_channel: int
    upsample_kernel_sizes: tuple[int, ...]
    n_layers_q: int = 3
    n_layers_trans_flow: int = 3
    n_flow_layer: int = 4
    use_spectral_norm: bool = False
    gin_channels: int
    ssl_dim: int
    n_speakers: int
    vocoder_name: str = "nsf-hifigan"
    speech_encoder: str = "vec768l12"
    speaker_embedding: bool = False
    vol_embedding: bool = False
    use_depthwise_conv: bool = False
    flow_share_parameter: bool = False
    use_automatic_f0_prediction: bool = True
    use_transformer_flow: bool = False
    extras: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, kw_only=True)
class SvcConfig:
    train: TrainConfig
    data: DataConfig
    model: ModelConfig
    spk: Mapping[str, int]
    extras: Mapping[str, Any] = field(default_factory=dict, compare=False)
    source: str = field(default="<dict>", compare=False)

    @classmethod
    def load(cls, path: str | Path) -> "SvcConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path} (expected a so-vits-svc 4.1 config.json)")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from exc
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "<dict>") -> "SvcConfig":
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{source}: the top level must be a JSON object with train/data/model/spk sections")
        sections = {}
        for name, section_cls in (("train", TrainConfig), ("data", DataConfig), ("model", ModelConfig)):
            if name not in raw:
                raise ConfigError(f"{source}: missing section '{name}' (a so-vits-svc 4.1 config has "
                                  "train, data, model and spk)")
            sections[name] = read_dataclass(section_cls, raw[name], source, name, ConfigError)
        spk = _parse_speakers(raw.get("spk"), source)
        extras = {k: v for k, v in raw.items() if k not in ("train", "data", "model", "spk")}
        config = cls(spk=spk, extras=extras, source=source, **sections)
        config._check_consistency()
        return config

    def to_dict(self) -> dict[str, Any]:
        out = {
            "train": to_mapping(self.train),
            "data": to_mapping(self.data),
            "model": to_mapping(self.model),
            "spk": dict(self.spk),
        }
        out.update(self.extras)
        return out

    def save(self, path: str | Path) -> None:
        with atomic_output(Path(path), text=True) as handle:
            handle.write(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")

    def replace_model(self, **changes: Any) -> "SvcConfig":
        """A copy with some `model` fields changed (validated again)."""
        return SvcConfig.from_dict({**self.to_dict(), "model": {**to_mapping(self.model), **changes}},
                                   source=self.source)

    @property
    def hop_length(self) -> int:
        return self.data.hop_length

    @property
    def spec_channels(self) -> int:
        """Linear-spectrogram bins the posterior encoder takes: filter_length // 2 + 1."""
        return self.data.filter_length // 2 + 1

    @property
    def segment_frames(self) -> int:
        """Training slice in frames: train.segment_size // data.hop_length."""
        return self.train.segment_size // self.data.hop_length

    @property
    def vocoder(self) -> str:
        """The vocoder actually built: so-vits-svc falls back to nsf-hifigan for unknown names."""
        return self.model.vocoder_name if self.model.vocoder_name in KNOWN_VOCODERS else "nsf-hifigan"

    def _check_consistency(self) -> None:
        m, where = self.model, self.source
        upsampling = math.prod(m.upsample_rates)
        if upsampling != self.data.hop_length:
            raise ConfigError(f"{where}: model.upsample_rates multiply to {upsampling} but data.hop_length is "
                              f"{self.data.hop_length}; the decoder must upsample one frame to one hop")
        if len(m.upsample_rates) != len(m.upsample_kernel_sizes):
            raise ConfigError(f"{where}: model.upsample_rates and model.upsample_kernel_sizes must have the "
                              "same length")
        if len(m.resblock_kernel_sizes) != len(m.resblock_dilation_sizes):
            raise ConfigError(f"{where}: model.resblock_kernel_sizes and model.resblock_dilation_sizes must have "
                              "the same length")
        if m.resblock not in ("1", "2"):
            raise ConfigError(f'{where}: model.resblock must be "1" or "2", got {m.resblock!r}')
        needed = 3 if m.resblock == "1" else 2
        for dilations in m.resblock_dilation_sizes:
            if len(dilations) < needed:
                raise ConfigError(f"{where}: model.resblock_dilation_sizes entries need {needed} dilations for "
                                  f'resblock "{m.resblock}", got {list(dilations)}')
        if m.upsample_initial_channel < 2 ** len(m.upsample_rates):
            raise ConfigError(f"{where}: model.upsample_initial_channel ({m.upsample_initial_channel}) must be at "
                              f"least 2**len(upsample_rates) = {2 ** len(m.upsample_rates)} (halved per stage)")
        for name in ("hidden_channels", "inter_channels"):
            if getattr(m, name) % 2 or getattr(m, name) <= 0:
                raise ConfigError(f"{where}: model.{name} must be a positive even number")
        if m.hidden_channels % m.n_heads:
            raise ConfigError(f"{where}: model.hidden_channels ({m.hidden_channels}) must be divisible by "
                              f"model.n_heads ({m.n_heads})")
        if m.n_speakers < 1:
            raise ConfigError(f"{where}: model.n_speakers must be at least 1, got {m.n_speakers}")
        for name, sid in self.spk.items():
            if not 0 <= sid < m.n_speakers:
                raise ConfigError(f"{where}: spk.{name} = {sid} is outside 0..model.n_speakers-1 "
                                  f"({m.n_speakers - 1})")
        if m.vocoder_name not in KNOWN_VOCODERS:
            warnings.warn(f"{where}: unknown model.vocoder_name {m.vocoder_name!r}; so-vits-svc falls back to "
                          "nsf-hifigan and so does this loader", stacklevel=3)


def _parse_speakers(raw: Any, source: str) -> dict[str, int]:
    if raw is None:
        raise ConfigError(f"{source}: missing section 'spk' (speaker name -> id, e.g. {{\"alice\": 0}})")
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: section 'spk' must map speaker names to integer ids")
    for name, sid in raw.items():
        if isinstance(sid, bool) or not isinstance(sid, int):
            raise ConfigError(f"{source}: spk.{name} must be an integer speaker id, got {json.dumps(sid)}")
    return dict(raw)


__all__ = ["ConfigError", "DataConfig", "ModelConfig", "SvcConfig", "TrainConfig"]
