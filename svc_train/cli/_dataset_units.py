"""Shared by `svc-train index` and `svc-train cluster`: the unit frames of every speaker of a config."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def units_of_config(config: Path) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """({speaker: [N, dim] units}, {speaker: id}) from the config's training and validation lists."""
    from svc_train.config import SvcConfig
    from svc_train.index import speaker_units

    cfg = SvcConfig.load(config)
    speakers = {str(k): int(v) for k, v in cfg.spk.items()}
    lists = [Path(cfg.data.training_files), Path(cfg.data.validation_files)]
    return speaker_units(lists, list(speakers)), speakers
