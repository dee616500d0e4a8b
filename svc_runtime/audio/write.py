"""Write audio atomically: a temporary file in the target folder, fsync, then rename over the target."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile

from svc_runtime.atomic import atomic_output
from svc_runtime.errors import OutputWriteError, output_write_error

OUTPUT_FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16")}
"""Output format name -> (libsndfile container, default subtype)."""


WRITE_BLOCK = 1 << 16
"""Samples clipped and written per step: no clipped copy of the whole signal is made."""


class _GuardedFile:
    """The file-like object libsndfile writes through: an OSError of the real file (disk full, I/O
    error) is kept in `error` instead of escaping from soundfile's cffi callback (where Python only
    prints "Exception ignored from cffi callback" and libsndfile sees a short write)."""

    def __init__(self, handle) -> None:
        self._handle = handle
        self.error: OSError | None = None

    def write(self, data) -> int:
        if self.error is not None:
            return 0
        try:
            written = self._handle.write(data)
        except OSError as e:
            self.error = e
            return 0
        return len(data) if written is None else written

    def seek(self, offset: int, whence: int = 0) -> int:
        try:
            return self._handle.seek(offset, whence)
        except OSError as e:
            self.error = self.error or e
            return -1

    def tell(self) -> int:
        try:
            return self._handle.tell()
        except OSError as e:
            self.error = self.error or e
            return -1

    def read(self, size: int = -1) -> bytes:
        try:
            return self._handle.read(size)
        except OSError as e:
            self.error = self.error or e
            return b""


def write_audio_atomic(
    path: str | os.PathLike,
    samples: np.ndarray,
    sample_rate: int,
    fmt: str = "wav",
    subtype: str | None = None,
) -> Path:
    """Write [N] float samples (clipped to [-1, 1]) to `path`; a crash never leaves a partial file.

    The samples are checked and written in blocks (same bytes as one `soundfile.write` call).
    A failed write raises OutputWriteError (DiskFullError when the disk or quota is full) and
    leaves neither the target nor a temporary file behind.
    """
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unsupported output format {fmt!r}; choose one of {sorted(OUTPUT_FORMATS)}")
    for start in range(0, samples.shape[0], WRITE_BLOCK):
        if not np.all(np.isfinite(samples[start : start + WRITE_BLOCK])):
            raise ValueError(f"{path}: refusing to write non-finite samples")
    container, default_subtype = OUTPUT_FORMATS[fmt]
    target = Path(path)
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    guarded = None
    try:
        with atomic_output(target) as handle:
            guarded = _GuardedFile(handle)
            with soundfile.SoundFile(guarded, "w", samplerate=sample_rate, channels=channels, format=container,
                                     subtype=subtype or default_subtype) as sink:
                for start in range(0, samples.shape[0], WRITE_BLOCK):
                    sink.write(np.clip(samples[start : start + WRITE_BLOCK], -1.0, 1.0))
                    if guarded.error is not None:
                        raise guarded.error
            if guarded.error is not None:
                raise guarded.error
    except OutputWriteError:
        raise
    except (OSError, AssertionError, RuntimeError, soundfile.SoundFileError) as e:
        # soundfile reports a short write as AssertionError (WAV) or LibsndfileError (FLAC)
        cause = guarded.error if guarded is not None and guarded.error is not None else e
        raise output_write_error(target, cause) from cause
    return target
