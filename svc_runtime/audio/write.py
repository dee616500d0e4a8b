"""Write audio atomically: a temporary file in the target folder, fsync, then rename over the target."""

from __future__ import annotations

import contextlib
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


class AudioWriter:
    """An output written block by block that appears at `path` only when complete (`atomic_output`).

    Use as a context manager: `write` clips each block to [-1, 1] (refusing non-finite samples), and the
    file is committed when the block ends without an error; on any error (or an interrupt) neither the
    target nor a temporary file is left. A failed write raises OutputWriteError (DiskFullError when the
    disk or quota is full).
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int, fmt: str = "wav", subtype: str | None = None,
                 channels: int = 1) -> None:
        if fmt not in OUTPUT_FORMATS:
            raise ValueError(f"unsupported output format {fmt!r}; choose one of {sorted(OUTPUT_FORMATS)}")
        container, default_subtype = OUTPUT_FORMATS[fmt]
        self.target = Path(path)
        self.frames = 0
        self._format = dict(samplerate=sample_rate, channels=channels, format=container,
                            subtype=subtype or default_subtype)
        self._stack = contextlib.ExitStack()
        self._guarded: _GuardedFile | None = None
        self._sink = None

    def __enter__(self) -> "AudioWriter":
        try:
            handle = self._stack.enter_context(atomic_output(self.target))
            self._guarded = _GuardedFile(handle)
            self._sink = self._stack.enter_context(soundfile.SoundFile(self._guarded, "w", **self._format))
        except BaseException as e:
            self._fail(type(e), e)
        return self

    def write(self, samples: np.ndarray) -> None:
        """Append float samples ([n] or [n, channels]); ValueError for non-finite ones (nothing is kept)."""
        for start in range(0, samples.shape[0], WRITE_BLOCK):
            block = samples[start : start + WRITE_BLOCK]
            if not np.all(np.isfinite(block)):
                raise ValueError(f"{self.target}: refusing to write non-finite samples")
            try:
                self._sink.write(np.clip(block, -1.0, 1.0))
            except (OSError, AssertionError, RuntimeError, soundfile.SoundFileError) as e:
                raise self._write_error(e) from e
            if self._guarded.error is not None:
                raise self._write_error(self._guarded.error)
            self.frames += block.shape[0]

    def _write_error(self, e: BaseException) -> OutputWriteError:
        # soundfile reports a short write as AssertionError (WAV) or LibsndfileError (FLAC)
        cause = self._guarded.error if self._guarded is not None and self._guarded.error is not None else e
        return output_write_error(self.target, cause)

    def _fail(self, kind, e: BaseException):
        """Unwind the temp file and sink after `e`; raise what the caller should see."""
        try:
            self._stack.__exit__(kind, e, e.__traceback__)
        except BaseException:
            pass
        if isinstance(e, (OutputWriteError, ValueError)) or not isinstance(e, Exception):
            raise e
        if isinstance(e, (OSError, AssertionError, RuntimeError, soundfile.SoundFileError)):
            raise self._write_error(e) from e
        raise e

    def __exit__(self, kind, e, tb) -> bool:
        if e is not None:
            self._fail(kind, e)
        try:
            self._stack.__exit__(None, None, None)  # closes the sink (flushes the header), then commits
        except (OSError, AssertionError, RuntimeError, soundfile.SoundFileError) as err:
            raise self._write_error(err) from err
        if self._guarded.error is not None:  # a failure while closing that libsndfile swallowed
            self.target.unlink(missing_ok=True)
            raise self._write_error(self._guarded.error)
        return False


def write_audio_atomic(
    path: str | os.PathLike,
    samples: np.ndarray,
    sample_rate: int,
    fmt: str = "wav",
    subtype: str | None = None,
) -> Path:
    """Write [N] float samples (clipped to [-1, 1]) to `path`; a crash never leaves a partial file.

    The samples are checked before anything is written, then written in blocks (same bytes as one
    `soundfile.write` call). A failed write raises OutputWriteError (DiskFullError when the disk or
    quota is full) and leaves neither the target nor a temporary file behind.
    """
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unsupported output format {fmt!r}; choose one of {sorted(OUTPUT_FORMATS)}")
    for start in range(0, samples.shape[0], WRITE_BLOCK):
        if not np.all(np.isfinite(samples[start : start + WRITE_BLOCK])):
            raise ValueError(f"{path}: refusing to write non-finite samples")
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    with AudioWriter(path, sample_rate, fmt, subtype, channels) as writer:
        writer.write(samples)
    return writer.target
