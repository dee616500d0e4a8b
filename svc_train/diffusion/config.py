"""so-vits-svc 4.1 diffusion config (`configs/diffusion.yaml`) as typed, validated dataclasses.

The yaml family is so-vits-svc's `configs_template/diffusion_template.yaml`: sections
`data`, `model`, `vocoder`, `infer`, `env`, `train` and the speaker map `spk`. Unknown
keys are kept out of the dataclasses (so-vits-svc adds some over versions) and missing
optional keys take the template's defaults. Validation happens here, at the edge, with
the field's name in every message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from svc_runtime.atomic import atomic_output
from svc_runtime.schema import read_dataclass, to_mapping
from svc_runtime.vocabulary import ENCODER_HOP, ENCODER_SAMPLE_RATE, UnitInterpolateMode

SAMPLERS = ("ddim", "pndm", "dpm-solver", "dpm-solver++", "unipc")
"""Fast samplers (so-vits-svc's names)."""

VOCODER_TYPES = ("nsf-hifigan", "nsf-hifigan-log10")


class DiffusionConfigError(ValueError):
    """A diffusion yaml that cannot be used; the message names the file and the field."""


@dataclass
class DiffusionDataConfig:
    sampling_rate: int = 44100
    block_size: int = 512  # hop of the mel frames (= the generator's hop_length)
    duration: float = 2.0  # seconds per training crop
    encoder: str = "vec768l12"
    cnhubertsoft_gate: int = 10
    encoder_sample_rate: int = ENCODER_SAMPLE_RATE
    encoder_hop_size: int = ENCODER_HOP
    encoder_out_channels: int = 768
    training_files: str = "filelists/train.txt"
    validation_files: str = "filelists/val.txt"
    extensions: list[str] = field(default_factory=lambda: ["wav"])
    unit_interpolate_mode: UnitInterpolateMode = "nearest"


@dataclass
class DiffusionModelConfig:
    type: str = "Diffusion"
    n_layers: int = 20
    n_chans: int = 512
    n_hidden: int = 256
    use_pitch_aug: bool = True
    timesteps: int = 1000
    k_step_max: int = 0  # 0: train every step (the model can also run without a generator)
    n_spk: int = 1


@dataclass
class DiffusionVocoderConfig:
    type: str = "nsf-hifigan"
    ckpt: str = "pretrain/nsf_hifigan/model"


@dataclass
class DiffusionInferConfig:
    speedup: int = 10
    method: str = "dpm-solver++"


@dataclass
class DiffusionEnvConfig:
    expdir: str = "logs/44k/diffusion"
    gpu_id: int = 0


@dataclass
class DiffusionTrainConfig:
    num_workers: int = 4
    amp_dtype: str = "fp32"
    batch_size: int = 48
    cache_all_data: bool = True
    cache_device: str = "cpu"
    cache_fp16: bool = True
    epochs: int = 100000
    interval_log: int = 10
    interval_val: int = 2000
    interval_force_save: int = 5000
    lr: float = 0.0001
    decay_step: int = 100000
    gamma: float = 0.5
    weight_decay: float = 0.0
    save_opt: bool = False
    seed: int = 1234


@dataclass
class DiffusionConfig:
    data: DiffusionDataConfig = field(default_factory=DiffusionDataConfig)
    model: DiffusionModelConfig = field(default_factory=DiffusionModelConfig)
    vocoder: DiffusionVocoderConfig = field(default_factory=DiffusionVocoderConfig)
    infer: DiffusionInferConfig = field(default_factory=DiffusionInferConfig)
    env: DiffusionEnvConfig = field(default_factory=DiffusionEnvConfig)
    train: DiffusionTrainConfig = field(default_factory=DiffusionTrainConfig)
    device: str = "cpu"
    spk: dict[str, int] = field(default_factory=lambda: {"speaker0": 0})

    @property
    def k_step_max(self) -> int:
        """Deepest shallow-diffusion start the model was trained for (timesteps when 0 / out of range)."""
        k = self.model.k_step_max
        return k if 0 < k < self.model.timesteps else self.model.timesteps

    @classmethod
    def load(cls, path: str | Path) -> DiffusionConfig:
        path = Path(path)
        if not path.is_file():
            raise DiffusionConfigError(f"diffusion config {path} does not exist; pass the diffusion.yaml you trained with")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise DiffusionConfigError(f"{path} is not valid yaml: {exc}") from exc
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: Any, source: str = "<dict>") -> DiffusionConfig:
        if not isinstance(raw, dict):
            raise DiffusionConfigError(f"{source}: top level must be a mapping of sections, got {type(raw).__name__}")
        sections = {
            "data": DiffusionDataConfig,
            "model": DiffusionModelConfig,
            "vocoder": DiffusionVocoderConfig,
            "infer": DiffusionInferConfig,
            "env": DiffusionEnvConfig,
            "train": DiffusionTrainConfig,
        }
        built: dict[str, Any] = {}
        for name, kind in sections.items():
            built[name] = read_dataclass(kind, raw.get(name) or {}, source, name, DiffusionConfigError)
        spk = raw.get("spk") or {"speaker0": 0}
        if not isinstance(spk, dict) or not all(isinstance(v, int) for v in spk.values()):
            raise DiffusionConfigError(f"{source}: spk must map speaker names to integer ids, got {spk!r}")
        config = cls(**built, device=str(raw.get("device", "cpu")), spk={str(k): int(v) for k, v in spk.items()})
        config.validate(source)
        return config

    def validate(self, source: str = "<config>") -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise DiffusionConfigError(f"{source}: {message}")

        d, m, t = self.data, self.model, self.train
        need(d.sampling_rate > 0, f"data.sampling_rate must be positive, got {d.sampling_rate}")
        need(d.block_size > 0, f"data.block_size must be positive, got {d.block_size}")
        need(d.duration > 0, f"data.duration must be positive seconds, got {d.duration}")
        need(d.encoder_out_channels > 0, f"data.encoder_out_channels must be positive, got {d.encoder_out_channels}")
        need(m.n_layers > 0 and m.n_chans > 0 and m.n_hidden > 0, "model.n_layers, n_chans and n_hidden must be positive")
        need(m.timesteps > 1, f"model.timesteps must be > 1, got {m.timesteps}")
        need(0 <= m.k_step_max <= m.timesteps, f"model.k_step_max must be in [0, timesteps={m.timesteps}], got {m.k_step_max}")
        need(m.n_spk >= 1, f"model.n_spk must be >= 1, got {m.n_spk}")
        need(self.vocoder.type in VOCODER_TYPES, f"vocoder.type must be one of {VOCODER_TYPES}, got {self.vocoder.type!r}")
        need(self.infer.method in SAMPLERS, f"infer.method must be one of {SAMPLERS}, got {self.infer.method!r}")
        need(self.infer.speedup >= 1, f"infer.speedup must be >= 1, got {self.infer.speedup}")
        need(t.amp_dtype in ("fp32", "fp16", "bf16"), f"train.amp_dtype must be fp32, fp16 or bf16, got {t.amp_dtype!r}")
        need(t.batch_size >= 1, f"train.batch_size must be >= 1, got {t.batch_size}")
        need(t.lr > 0, f"train.lr must be positive, got {t.lr}")
        need(t.interval_log >= 1 and t.interval_val >= 1 and t.interval_force_save >= 1, "train.interval_* must be >= 1")
        bad = {k: v for k, v in self.spk.items() if not 0 <= v < m.n_spk}
        need(not bad or m.n_spk == 1, f"spk ids must be in [0, model.n_spk={m.n_spk}), got {bad}")

    def to_dict(self) -> dict[str, Any]:
        return to_mapping(self)

    def save(self, path: str | Path) -> None:
        with atomic_output(Path(path), text=True) as handle:
            handle.write(yaml.safe_dump(self.to_dict(), sort_keys=False))


__all__ = [
    "SAMPLERS",
    "DiffusionDataConfig",
    "DiffusionConfig",
    "DiffusionConfigError",
    "DiffusionEnvConfig",
    "DiffusionInferConfig",
    "DiffusionModelConfig",
    "DiffusionTrainConfig",
    "DiffusionVocoderConfig",
]
