"""One error taxonomy for the whole project: `SvcError` and what can go wrong, by kind.

Every failure a user can act on is an `SvcError` whose message reads
``what is wrong; what to do`` (one line, the file or graph named first). Library
failures (ONNX Runtime, soundfile, numpy allocations) are translated into these at
the boundary where they happen (`translate_run_error`, `output_write_error`); the
CLIs print ``str(error)`` and exit with `exit_code`. Anything else reaching a CLI is
a bug: it is shown with its traceback and "please report".

Several classes also derive from the builtin they replace (ValueError, RuntimeError,
MemoryError, OSError) so code that caught the builtin keeps working.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

EXIT_FAILED = 1
"""Some files (or the run) failed."""
EXIT_USAGE = 2
"""Bad usage or a bad bundle: nothing was attempted."""
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

REPORT_HINT = "this is a bug, please report it with the traceback above"


class SvcError(Exception):
    """A failure the user can act on. str() is ``message; hint`` (hint: what to do)."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, hint: str = "") -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message}; {hint}" if hint else message)


class UsageError(SvcError, ValueError):
    """Options or arguments that cannot work together (nothing was attempted)."""

    exit_code = EXIT_USAGE


class InputAudioError(SvcError, ValueError):
    """One input file cannot be converted. `path`, `reason` (what is wrong and what to do)."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class BundleError(SvcError, ValueError):
    """The bundle cannot be used: manifest, files or graphs disagree or are damaged."""

    exit_code = EXIT_USAGE


class ModelRunError(SvcError, RuntimeError):
    """Running one graph failed. `graph`: its name; `cause`: the backend's own message (one line)."""

    def __init__(self, graph: str, cause: str, hint: str = "") -> None:
        self.graph = graph
        self.cause = cause
        super().__init__(f"graph {graph} failed: {cause}", hint or "if it happens for every file, re-export the bundle")


class OutOfMemoryError(ModelRunError, MemoryError):
    """A graph run (or an array of the pipeline) did not fit in memory. `graph`: the graph or stage."""

    def __init__(self, graph: str, cause: str) -> None:
        self.graph = graph
        self.cause = cause
        SvcError.__init__(self, f"out of memory in {graph} ({cause})",
                          "use a smaller --max-window / --batch-size, or free memory")


class OutputWriteError(SvcError, OSError):
    """An output file could not be written (nothing partial is left). `path`: the target."""

    def __init__(self, path: str | os.PathLike, cause: str, hint: str = "check the output folder") -> None:
        self.path = str(path)
        self.cause = cause
        SvcError.__init__(self, f"cannot write {self.path}: {cause}", hint)

    def __str__(self) -> str:  # OSError's own __str__ would print its errno form
        return self.args[0]


class DiskFullError(OutputWriteError):
    """No space (or quota) left on the output's file system: later files would fail too."""

    def __init__(self, path: str | os.PathLike, cause: str = "no space left on device") -> None:
        super().__init__(path, cause, "free space on that disk (or choose another --out-dir), then resume")


class TrainingDataError(SvcError, ValueError):
    """A training data set (clips, features, config) does not fit what the step needs."""

    exit_code = EXIT_USAGE


# --------------------------------------------------------------------------- translation

_OOM = re.compile(
    r"bad_alloc|bad allocation|out of memory|failed to allocate|cudaErrorMemoryAllocation|"
    r"CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED|MemoryError|Cannot allocate memory",
    re.IGNORECASE,
)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a MemoryError or a backend error whose message says an allocation failed."""
    return isinstance(exc, MemoryError) or bool(_OOM.search(str(exc)))


def _backend_error(exc: BaseException) -> bool:
    """ONNX Runtime / OpenVINO / TensorRT exceptions derive from Exception in their own modules."""
    module = type(exc).__module__ or ""
    return module.startswith(("onnxruntime", "openvino", "tensorrt")) or isinstance(exc, (RuntimeError, MemoryError))


def short_cause(exc: BaseException, limit: int = 300) -> str:
    """The useful line of a backend message: ONNX Runtime's 'Status Message: ...', else its first line."""
    text = str(exc).strip() or type(exc).__name__
    match = re.search(r"Status Message:\s*(.+)", text)
    if match:
        text = match.group(1)
    text = re.sub(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*", "", text)
    line = text.splitlines()[0].strip() if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def translate_run_error(graph: str, exc: BaseException) -> BaseException:
    """The `SvcError` for a failed run of `graph` (OutOfMemoryError or ModelRunError); `exc` itself
    when it is already an SvcError or not a backend failure (a bug, to be shown as one)."""
    if isinstance(exc, SvcError):
        return exc
    if is_out_of_memory(exc) and (_backend_error(exc) or isinstance(exc, MemoryError)):
        return OutOfMemoryError(graph, short_cause(exc))
    if _backend_error(exc):
        return ModelRunError(graph, short_cause(exc))
    return exc


F = TypeVar("F", bound=Callable)


def graph_run(method: F) -> F:
    """Decorate a session's `run(self, feeds)`: backend exceptions become ModelRunError /
    OutOfMemoryError naming `self.name` (the graph)."""

    def run(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            translated = translate_run_error(getattr(self, "name", "?"), exc)
            if translated is exc:
                raise
            raise translated from exc

    run.__name__ = method.__name__
    run.__doc__ = method.__doc__
    run.__wrapped__ = method  # type: ignore[attr-defined]
    return run  # type: ignore[return-value]


def graph_load_error(graph: str, path: str | os.PathLike, exc: BaseException) -> BaseException:
    """The `BundleError` for a graph file the backend cannot load (corrupt, not a graph); `exc` when
    the failure is not about the file (provider missing, out of memory)."""
    module = type(exc).__module__ or ""
    if isinstance(exc, SvcError) or not module.startswith(("onnxruntime", "openvino", "tensorrt")):
        return exc
    if is_out_of_memory(exc):
        return OutOfMemoryError(graph, short_cause(exc))
    return BundleError(f"{path}: graph {graph} cannot be loaded ({short_cause(exc)})",
                       "the file is damaged or not an ONNX graph; re-export the bundle or restore the file")


@contextmanager
def loading_graph(graph: str, path: str | os.PathLike) -> Iterator[None]:
    """Around a backend's session creation: a file it cannot load becomes a BundleError (`graph_load_error`)."""
    try:
        yield
    except Exception as exc:
        translated = graph_load_error(graph, path, exc)
        if translated is exc:
            raise
        raise translated from exc


def output_write_error(path: str | os.PathLike, exc: BaseException) -> OutputWriteError:
    """An OutputWriteError (DiskFullError for ENOSPC / EDQUOT / EFBIG) for a failed write of `path`.

    soundfile reports a failed write as an AssertionError or a LibsndfileError ("Error writing...")
    without errno; `disk_errno` is then taken from the last OSError in the cause chain, if any.
    """
    if isinstance(exc, OutputWriteError):
        return exc
    code = disk_errno(exc)
    if code in _DISK_FULL:
        return DiskFullError(path, os.strerror(code).lower())
    detail = str(exc).strip() or type(exc).__name__
    return OutputWriteError(path, detail.splitlines()[0])


def disk_errno(exc: BaseException | None) -> int | None:
    """The errno of `exc` or of the first OSError in its __cause__ / __context__ chain."""
    seen = 0
    while exc is not None and seen < 16:
        if isinstance(exc, OSError) and exc.errno:
            return exc.errno
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None
