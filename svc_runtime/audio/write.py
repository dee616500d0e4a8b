"""Write audio atomically: a temporary file in the target folder, fsync, then rename over the target."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile

from svc_runtime.atomic import atomic_output

OUTPUT_FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16")}
"""Output format name -> (libsndfile container, default subtype)."""


WRITE_BLOCK = 1 << 16
"""Samples clipped and written per step: no clipped copy of the whole signal is made."""


def write_audio_atomic(
    path: str | os.PathLike,
    samples: np.ndarray,
    sample_rate: int,
    fmt: str = "wav",
    subtype: str | None = None,
) -> Path:
    """Write [N] float samples (clipped to [-1, 1]) to `path`; a crash never leaves a partial file.

    The samples are checked and written in blocks (same bytes as one `soundfile.write` call).
    """
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unsupported output format {fmt!r}; choose one of {sorted(OUTPUT_FORMATS)}")
    for start in range(0, samples.shape[0], WRITE_BLOCK):
        if not np.all(np.isfinite(samples[start : start + WRITE_BLOCK])):
            raise ValueError(f"{path}: refusing to write non-finite samples")
    container, default_subtype = OUTPUT_FORMATS[fmt]
    target = Path(path)
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    with atomic_output(target) as handle, soundfile.SoundFile(
        handle, "w", samplerate=sample_rate, channels=channels, format=container, subtype=subtype or default_subtype
    ) as sink:
        for start in range(0, samples.shape[0], WRITE_BLOCK):
            sink.write(np.clip(samples[start : start + WRITE_BLOCK], -1.0, 1.0))
    return target
