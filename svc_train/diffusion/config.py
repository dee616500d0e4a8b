"""so-vits-svc 4.1 diffusion config (`configs/diffusion.yaml`) as typed, validated dataclasses.

The yaml family is so-vits-svc's `configs_template/diffusion_template.yaml`: sections
`data`, `model`, `vocoder`, `infer`, `env`, `train` and the speaker map `spk`. Unknown
keys are kept out of the dataclasses (so-vits-svc adds some over versions) and missing
optional keys take the template's defaults. Validation happens here, at the edge, with
the field's name in every message.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

SAMPLERS = ("ddim", "pndm", "dpm-solver", "dpm-solver++", "unipc")
"""Fast samplers (so-vits-svc's names)."""

VOCODER_TYPES = ("nsf-hifigan", "nsf-hifigan-log10")


class DiffusionConfigError(ValueError):
    """A diffusion yaml that cannot be used; the message names the file and the field."""


@dataclass
class DataConfig:
    sampling_rate: int = 44100
    block_size: int = 512  # hop of the mel frames (= the generator's hop_length)
    duration: float = 2.0  # seconds per training crop
    encoder: str = "vec768l12"
    cnhubertsoft_gate: int = 10
    encoder_sample_rate: int = 16000
    encoder_hop_size: int = 320
    encoder_out_channels: int = 768
    training_files: str = "filelists/train.txt"
    validation_files: str = "filelists/val.txt"
    extensions: list[str] = field(default_factory=lambda: ["wav"])
    unit_interpolate_mode: str = "nearest"


@dataclass
class ModelConfig:
    type: str = "Diffusion"
    n_layers: int = 20
    n_chans: int = 512
    n_hidden: int = 256
    use_pitch_aug: bool = True
    timesteps: int = 1000
    k_step_max: int = 0  # 0: train every step (the model can also run without a generator)
    n_spk: int = 1


@dataclass
class VocoderConfig:
    type: str = "nsf-hifigan"
    ckpt: str = "pretrain/nsf_hifigan/model"


@dataclass
class InferConfig:
    speedup: int = 10
    method: str = "dpm-solver++"


@dataclass
class EnvConfig:
    expdir: str = "logs/44k/diffusion"
    gpu_id: int = 0


@dataclass
class TrainConfig:
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
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    vocoder: VocoderConfig = field(default_factory=VocoderConfig)
    infer: InferConfig = field(default_factory=InferConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
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
            "data": DataConfig,
            "model": ModelConfig,
            "vocoder": VocoderConfig,
            "infer": InferConfig,
            "env": EnvConfig,
            "train": TrainConfig,
        }
        built: dict[str, Any] = {}
        for name, kind in sections.items():
            built[name] = _section(kind, raw.get(name) or {}, f"{source}: {name}")
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
        need(d.unit_interpolate_mode in ("nearest", "left"), f"data.unit_interpolate_mode must be nearest or left, got {d.unit_interpolate_mode!r}")
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
        return asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")


def _section(kind: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise DiffusionConfigError(f"{where} must be a mapping, got {type(raw).__name__}")
    values: dict[str, Any] = {}
    for f in fields(kind):
        if f.name not in raw:
            continue
        value = raw[f.name]
        default = getattr(kind(), f.name)
        values[f.name] = _coerce(value, default, f"{where}.{f.name}")
    return kind(**values)


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Coerce a yaml value to the type of the field's default (int/float/bool/str/list)."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise DiffusionConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise DiffusionConfigError(f"{where} must be an integer, got {value!r}")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DiffusionConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, list):
        if not isinstance(value, list):
            raise DiffusionConfigError(f"{where} must be a list, got {value!r}")
        return [str(v) for v in value]
    if value is None:
        raise DiffusionConfigError(f"{where} must be set, got null")
    return str(value)


__all__ = [
    "SAMPLERS",
    "DataConfig",
    "DiffusionConfig",
    "DiffusionConfigError",
    "EnvConfig",
    "InferConfig",
    "ModelConfig",
    "TrainConfig",
    "VocoderConfig",
]
