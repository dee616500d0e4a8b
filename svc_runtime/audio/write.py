"""Write audio atomically: a temporary file in the target folder, fsync, then rename over the target."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile

from svc_runtime.atomic import atomic_output

OUTPUT_FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16")}
"""Output format name -> (libsndfile container, default subtype)."""


def write_audio_atomic(
    path: str | os.PathLike,
    samples: np.ndarray,
    sample_rate: int,
    fmt: str = "wav",
    subtype: str | None = None,
) -> Path:
    """Write [N] float samples (clipped to [-1, 1]) to `path`; a crash never leaves a partial file."""
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unsupported output format {fmt!r}; choose one of {sorted(OUTPUT_FORMATS)}")
    if not np.all(np.isfinite(samples)):
        raise ValueError(f"{path}: refusing to write non-finite samples")
    container, default_subtype = OUTPUT_FORMATS[fmt]
    target = Path(path)
    with atomic_output(target) as handle:
        soundfile.write(
            handle,
            np.clip(samples, -1.0, 1.0),
            sample_rate,
            format=container,
            subtype=subtype or default_subtype,
        )
    return target
