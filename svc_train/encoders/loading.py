"""Read HuBERT-family checkpoints (fairseq, Hugging Face, hubert-soft) into `HubertEncoder`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from svc_train.encoders import layouts
from svc_train.encoders.hubert import HubertConfig, HubertEncoder
from svc_train.encoders.layouts import CheckpointLayoutError
from svc_train.safe_pickle import load_checkpoint, read_weights_only

__all__ = [
    "HF_WEIGHT_FILES",
    "LoadedHubert",
    "build_hubert",
    "load_fairseq_hubert",
    "load_hf_hubert",
    "load_hubert_soft",
    "read_fairseq_checkpoint",
    "read_hf_folder",
]

HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass
class LoadedHubert:
    """A loaded encoder body and what its checkpoint says about input handling.

    layout: "fairseq" | "hf" | "hubert-soft".
    task_normalize: the checkpoint's own waveform-normalisation flag (fairseq
        ``task.normalize`` / HF ``do_normalize``), None when it has none.
        so-vits-svc does not consult it for HuBERT encoders; kept for reporting.
    """

    model: HubertEncoder
    layout: str
    task_normalize: bool | None = None


def build_hubert(config: HubertConfig, state: Mapping[str, torch.Tensor], source: str) -> HubertEncoder:
    """`HubertEncoder` in eval mode with ``state`` loaded strictly; errors name ``source``."""
    model = HubertEncoder(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}")
        if unexpected:
            parts.append(
                f"unexpected {len(unexpected)}: {', '.join(unexpected[:6])}{' ...' if len(unexpected) > 6 else ''}"
            )
        raise CheckpointLayoutError(f"{source}: weights do not match the config ({'; '.join(parts)})")
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointLayoutError(
                f"{source}: {key} has shape {tuple(state[key].shape)}, the config implies {tuple(tensor.shape)}"
            )
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
    return model.eval()


# ---------------------------------------------------------------- fairseq


def read_fairseq_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any], Mapping[str, torch.Tensor]]:
    """fairseq checkpoint -> (model config, task config, state dict).

    The config comes from ``cfg`` (plain dict or omegaconf, converted by
    `safe_pickle`) or, in older checkpoints, from ``args`` (argparse namespace).
    """
    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint, Mapping) or "model" not in checkpoint:
        raise CheckpointLayoutError(f"{path}: not a fairseq checkpoint (no top-level 'model' entry)")
    cfg, args = checkpoint.get("cfg"), checkpoint.get("args")
    if isinstance(cfg, Mapping) and isinstance(cfg.get("model"), Mapping):
        model_cfg = dict(cfg["model"])
        task_cfg = dict(cfg.get("task") or {})
    elif isinstance(args, Mapping):
        model_cfg = dict(args)
        task_cfg = dict(args)
    else:
        raise CheckpointLayoutError(
            f"{path}: fairseq checkpoint without a model config (neither cfg['model'] nor args is present)"
        )
    return model_cfg, task_cfg, checkpoint["model"]


def load_fairseq_hubert(path: Path) -> LoadedHubert:
    """fairseq ``HubertModel`` checkpoint (e.g. ContentVec ``checkpoint_best_legacy_500.pt``)."""
    model_cfg, task_cfg, raw_state = read_fairseq_checkpoint(path)
    state = layouts.state_from_fairseq(raw_state)
    config = layouts.config_from_fairseq(model_cfg, state)
    normalize = task_cfg.get("normalize")
    return LoadedHubert(build_hubert(config, state, str(path)), "fairseq", None if normalize is None else bool(normalize))


# ---------------------------------------------------------------- Hugging Face


def _hf_folder(path: Path) -> Path:
    return path if path.is_dir() else path.parent


def read_hf_folder(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Hugging Face model folder (or its weight file) -> (config.json dict, state dict)."""
    folder = _hf_folder(path)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder}: a Hugging Face model folder needs config.json next to the weights")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if path.is_file():
        weights = path
    else:
        candidates = [folder / name for name in HF_WEIGHT_FILES if (folder / name).is_file()]
        if not candidates:
            if any(folder.glob("*.index.json")):
                raise CheckpointLayoutError(f"{folder}: sharded Hugging Face weights are not supported; merge them first")
            raise FileNotFoundError(f"{folder}: no weights found (expected one of {', '.join(HF_WEIGHT_FILES)})")
        weights = candidates[0]
    if weights.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(weights), device="cpu")
    else:
        state = read_weights_only(weights, "Hugging Face weights", CheckpointLayoutError)
    if not isinstance(state, Mapping):
        raise CheckpointLayoutError(f"{weights}: expected a state dict, found {type(state).__name__}")
    return config, dict(state)


def _hf_normalize_flag(folder: Path) -> bool | None:
    preprocessor = folder / "preprocessor_config.json"
    if not preprocessor.is_file():
        return None
    value = json.loads(preprocessor.read_text(encoding="utf-8")).get("do_normalize")
    return None if value is None else bool(value)


def load_hf_hubert(path: Path) -> LoadedHubert:
    """Hugging Face ``HubertModel`` folder (e.g. ``lengyue233/content-vec-best``)."""
    config_dict, raw_state = read_hf_folder(path)
    state = layouts.state_from_hf(raw_state)
    config = layouts.config_from_hf(config_dict, state)
    return LoadedHubert(build_hubert(config, state, str(path)), "hf", _hf_normalize_flag(_hf_folder(path)))


# ---------------------------------------------------------------- hubert-soft


def load_hubert_soft(path: Path) -> LoadedHubert:
    """bshall hubert-soft checkpoint (``hubert-soft-0d54a1f4.pt``: a bare state dict)."""
    raw = load_checkpoint(path)
    if isinstance(raw, Mapping) and isinstance(raw.get("model"), Mapping) and "proj.weight" not in raw:
        raw = raw["model"]
    if not isinstance(raw, Mapping):
        raise CheckpointLayoutError(f"{path}: expected a hubert-soft state dict, found {type(raw).__name__}")
    state = layouts.state_from_hubert_soft(raw)
    config = layouts.config_from_hubert_soft(state)
    return LoadedHubert(build_hubert(config, state, str(path)), "hubert-soft", None)
