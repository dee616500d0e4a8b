"""Train/validation file lists and a so-vits-svc 4.1 ``config.json`` for a prepared dataset.

As so-vits-svc's ``preprocess_flist_config.py``: one speaker per sub-folder of
the dataset (ids in sorted folder order), clips under 0.3 s skipped, a few
clips per speaker held out for validation, the config written from the 4.1
template (``standard``), the 4.1 tiny template (``tiny``) or the CPU preset
(``cpu``), with the speech encoder's unit size (from ``svc_train.encoders.ENCODER_SPECS``
or read from the checkpoint) as ``ssl_dim`` and ``gin_channels``, and ``--vol-aug``
turning on both the volume embedding and volume augmentation.

File lists hold absolute wav paths, one per line, so they work from any
working directory; the config points to them by absolute path too.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import soundfile

from svc_runtime.atomic import atomic_output

ModelSize = Literal["standard", "tiny", "cpu"]
MODEL_SIZES: tuple[str, ...] = ("standard", "tiny", "cpu")
MIN_CLIP_S = 0.3
SPLIT_SEED = 1234

_TRAIN: dict[str, Any] = {
    "log_interval": 200,
    "eval_interval": 800,
    "seed": 1234,
    "epochs": 10000,
    "learning_rate": 0.0001,
    "betas": [0.8, 0.99],
    "eps": 1e-09,
    "batch_size": 6,
    "fp16_run": False,
    "half_type": "fp16",
    "lr_decay": 0.999875,
    "segment_size": 10240,
    "init_lr_ratio": 1,
    "warmup_epochs": 0,
    "c_mel": 45,
    "c_kl": 1.0,
    "use_sr": True,
    "max_speclen": 512,
    "port": "8001",
    "keep_ckpts": 3,
    "all_in_mem": False,
    "vol_aug": False,
}

_DATA: dict[str, Any] = {
    "training_files": "filelists/train.txt",
    "validation_files": "filelists/val.txt",
    "max_wav_value": 32768.0,
    "sampling_rate": 44100,
    "filter_length": 2048,
    "hop_length": 512,
    "win_length": 2048,
    "n_mel_channels": 80,
    "mel_fmin": 0.0,
    "mel_fmax": 22050,
    "unit_interpolate_mode": "nearest",
}

_MODEL_STANDARD: dict[str, Any] = {
    "inter_channels": 192,
    "hidden_channels": 192,
    "filter_channels": 768,
    "n_heads": 2,
    "n_layers": 6,
    "kernel_size": 3,
    "p_dropout": 0.1,
    "resblock": "1",
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "upsample_rates": [8, 8, 2, 2, 2],
    "upsample_initial_channel": 512,
    "upsample_kernel_sizes": [16, 16, 4, 4, 4],
    "n_layers_q": 3,
    "n_layers_trans_flow": 3,
    "n_flow_layer": 4,
    "use_spectral_norm": False,
    "gin_channels": 768,
    "ssl_dim": 768,
    "n_speakers": 200,
    "vocoder_name": "nsf-hifigan",
    "speech_encoder": "vec768l12",
    "speaker_embedding": False,
    "vol_embedding": False,
    "use_depthwise_conv": False,
    "flow_share_parameter": False,
    "use_automatic_f0_prediction": True,
    "use_transformer_flow": False,
}

# so-vits-svc 4.1's config_tiny_template.json: narrower decoder, depthwise convs, one shared flow network.
_MODEL_TINY: dict[str, Any] = {
    **_MODEL_STANDARD,
    "filter_channels": 512,
    "upsample_initial_channel": 400,
    "use_depthwise_conv": True,
    "flow_share_parameter": True,
}


# The CPU preset: the tiny model with narrow layers, short segments and small
# batches, losses on the console every 10 steps, for CPU training that a user can follow
# (benchmarks/train_speed.py --size cpu); quality needs a GPU and the standard model.
_MODEL_CPU: dict[str, Any] = {
    **_MODEL_TINY,
    "hidden_channels": 64,
    "inter_channels": 64,
    "filter_channels": 128,
    "upsample_initial_channel": 128,
}
_TRAIN_CPU: dict[str, Any] = {**_TRAIN, "batch_size": 4, "segment_size": 5120, "log_interval": 10, "eval_interval": 200}

_TEMPLATES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "standard": (_TRAIN, _MODEL_STANDARD),
    "tiny": (_TRAIN, _MODEL_TINY),
    "cpu": (_TRAIN_CPU, _MODEL_CPU),
}
DEFAULT_SPEECH_ENCODER: str = _MODEL_STANDARD["speech_encoder"]
DEFAULT_SAMPLING_RATE: int = _DATA["sampling_rate"]


def config_template(size: ModelSize) -> dict[str, Any]:
    """A fresh so-vits-svc 4.1 config dict (train, data, model, spk) of the given size (`MODEL_SIZES`)."""
    if size not in _TEMPLATES:
        raise ValueError(f"unknown model size {size!r}; choose one of {', '.join(MODEL_SIZES)}")
    train, model = _TEMPLATES[size]
    return copy.deepcopy({"train": train, "data": _DATA, "model": model, "spk": {}})


def apply_override(config: dict[str, Any], assignment: str) -> None:
    """Apply ``section.key=value`` (value parsed as JSON, else kept as a string) to ``config`` in place."""
    if "=" not in assignment:
        raise ValueError(f"override {assignment!r}: expected SECTION.KEY=VALUE, e.g. train.batch_size=4")
    dotted, raw = assignment.split("=", 1)
    parts = dotted.strip().split(".")
    if len(parts) != 2 or parts[0] not in ("train", "data", "model"):
        raise ValueError(f"override {assignment!r}: the key must be train.KEY, data.KEY or model.KEY")
    section, key = parts
    if key not in config[section]:
        raise ValueError(f"override {assignment!r}: {section} has no key {key!r} in the 4.1 template")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    old = config[section][key]
    if old is not None and not isinstance(value, type(old)) and not (isinstance(old, float) and isinstance(value, int)):
        raise ValueError(f"override {assignment!r}: {section}.{key} takes {type(old).__name__}, got {raw!r}")
    config[section][key] = value


@dataclass
class DatasetSplit:
    speakers: dict[str, int]
    train: list[Path]
    val: list[Path]
    skipped: list[str] = field(default_factory=list)


def split_dataset(dataset_dir: Path, val_per_speaker: int = 2, seed: int = SPLIT_SEED) -> DatasetSplit:
    """Speakers from the sub-folders of ``dataset_dir`` and a seeded train/validation split of their wavs."""
    if not dataset_dir.is_dir():
        raise FileNotFoundError(f"{dataset_dir}: dataset folder does not exist (run `svc-train resample` first)")
    if val_per_speaker < 0:
        raise ValueError("val_per_speaker must be >= 0")
    rng = random.Random(seed)
    speakers: dict[str, int] = {}
    train: list[Path] = []
    val: list[Path] = []
    skipped: list[str] = []
    for folder in sorted(p for p in dataset_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        wavs = []
        for wav in sorted(folder.glob("*.wav")):
            if wav.name.startswith("."):
                continue
            try:
                info = soundfile.info(str(wav))
            except (RuntimeError, soundfile.LibsndfileError) as e:
                skipped.append(f"{wav}: unreadable ({e})")
                continue
            if info.frames / info.samplerate < MIN_CLIP_S:
                skipped.append(f"{wav}: shorter than {MIN_CLIP_S} s")
                continue
            wavs.append(wav.resolve())
        if not wavs:
            skipped.append(f"{folder}: no usable wav files; speaker left out")
            continue
        speakers[folder.name] = len(speakers)
        rng.shuffle(wavs)
        n_val = min(val_per_speaker, len(wavs) - 1)  # every speaker keeps at least one training clip
        val += wavs[:n_val]
        train += wavs[n_val:]
    if not speakers:
        raise ValueError(f"{dataset_dir}: no speaker folder with wav files; expected {dataset_dir}/<speaker>/*.wav")
    rng.shuffle(train)
    rng.shuffle(val)
    return DatasetSplit(speakers=speakers, train=train, val=val, skipped=skipped)


def build_config(
    split: DatasetSplit,
    train_list: Path,
    val_list: Path,
    units_dim: int,
    size: ModelSize = "standard",
    speech_encoder: str = DEFAULT_SPEECH_ENCODER,
    sampling_rate: int = DEFAULT_SAMPLING_RATE,
    vol_aug: bool = False,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """The config dict for ``split`` with ``units_dim``-wide units (ssl_dim, gin_channels).

    An override of ``model.ssl_dim`` that disagrees with ``units_dim`` is refused: the features
    would not fit the model.
    """
    config = config_template(size)
    dim = units_dim
    config["spk"] = dict(split.speakers)
    config["model"]["n_speakers"] = len(split.speakers)
    config["model"]["speech_encoder"] = speech_encoder
    config["model"]["ssl_dim"] = dim
    config["model"]["gin_channels"] = dim
    config["data"]["sampling_rate"] = sampling_rate
    config["data"]["mel_fmax"] = sampling_rate // 2
    config["data"]["training_files"] = str(train_list.resolve())
    config["data"]["validation_files"] = str(val_list.resolve())
    if vol_aug:
        config["train"]["vol_aug"] = True
        config["model"]["vol_embedding"] = True
    for assignment in overrides or []:
        apply_override(config, assignment)
    if config["model"]["ssl_dim"] != dim:
        raise ValueError(
            f"model.ssl_dim={config['model']['ssl_dim']} disagrees with the {dim}-wide units of {speech_encoder}; "
            "drop the override (ssl_dim comes from the encoder)"
        )
    return config


def write_filelist(path: Path, files: list[Path]) -> None:
    with atomic_output(path, text=True) as handle:
        handle.write("".join(f"{f}\n" for f in files))


def read_filelist(path: Path) -> list[Path]:
    """Wav paths of a file list (so-vits-svc's format: one path per line, optional ``|`` fields ignored)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file list does not exist (run `svc-train config` first)")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Path(line.split("|")[0].strip().replace("\\", "/")) for line in lines if line.strip()]


def write_config(path: Path, config: dict[str, Any]) -> None:
    with atomic_output(path, text=True) as handle:
        handle.write(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


__all__ = [
    "DEFAULT_SAMPLING_RATE",
    "DEFAULT_SPEECH_ENCODER",
    "MODEL_SIZES",
    "DatasetSplit",
    "apply_override",
    "build_config",
    "config_template",
    "read_filelist",
    "split_dataset",
    "write_config",
    "write_filelist",
]
