"""Batch conversion of many files: discovery, output mapping, sharding, and a prefetching run loop.

Decoding, resampling and feature extraction of the next files run in a worker thread
while the generator renders the current ones; prepared files that are ready together
are rendered together, so equal-length chunks of different files share a batch.

Failure isolation: whatever goes wrong with one file becomes that file's `FileResult`
(``file: what is wrong; what to do``) and the batch goes on. Out of memory is retried
once with a smaller window and batch (`smaller_options`); a full disk stops the batch
(`BatchRunner.stopped`), since every later file would fail the same way. Only an error
that is not a known failure (a bug) carries a traceback. Workers sharing an output
folder claim each file first (`outputs.try_claim`), and an output converted with other
settings is never replaced unless `overwrite`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from svc_runtime.audio.decode import MAX_DURATION_S, decode_audio, read_header
from svc_runtime.audio.write import write_audio_atomic
from svc_runtime.bundle.validate import probe_open_graphs
from svc_runtime.errors import (
    EXIT_FAILED,
    EXIT_USAGE,
    REPORT_HINT,
    BundleError,
    DiskFullError,
    InputAudioError,
    ModelRunError,
    OutOfMemoryError,
    OutputWriteError,
    SvcError,
    output_write_error,
    short_cause,
)
from svc_runtime.pipeline import outputs
from svc_runtime.pipeline.convert import Converter, PreparedFile
from svc_runtime.pipeline.interrupt import NoGuard
from svc_runtime.pipeline.long_file import LONG_FILE_SECONDS, LongFilePlan, convert_long_file, plan_long_file

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64")


class PlanError(ValueError):
    """The file list or output folder cannot be used as given."""


@dataclass(frozen=True)
class FileJob:
    """One input file and the output it becomes."""

    source: Path
    target: Path


@dataclass
class FileResult:
    """What happened to one file. status: converted, skipped or failed.

    reason: one line, ``what is wrong; what to do``; traceback: only for a bug (please report).
    """

    job: FileJob
    status: str
    reason: str = ""
    audio_seconds: float = 0.0
    notes: tuple[str, ...] = ()
    traceback: str = ""


def parse_shard(text: str | None) -> tuple[int, int]:
    """'i/n' (0 <= i < n) -> (i, n); None -> (0, 1)."""
    if text is None:
        return 0, 1
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise PlanError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise PlanError(f"--shard {text}: need n >= 1 and 0 <= i < n")
    return i, n


def plan_jobs(inputs: list[Path], out_dir: Path, fmt: str, shard: tuple[int, int] = (0, 1)) -> list[FileJob]:
    """Input files (folders searched recursively for audio) -> jobs with mirrored output paths.

    A folder's files keep their path relative to the folder; a file given directly goes to
    OUT_DIR/<name>. The output suffix becomes `.fmt` (`name.ext.fmt` where two inputs differ
    only in their extension). Refuses a plan in which an output would overwrite an input or
    two inputs would still write the same output.
    """
    out_root = out_dir.resolve()
    jobs: list[FileJob] = []
    for item in inputs:
        if not item.exists():
            raise PlanError(f"{item}: no such file or folder")
        if item.is_dir():
            root = item.resolve()
            found = []
            for dirpath, dirnames, filenames in os.walk(root):
                here = Path(dirpath)
                dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (here / d).resolve() != out_root)
                for name in sorted(filenames):
                    if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_SUFFIXES:
                        found.append(here / name)
            for path in found:
                jobs.append(FileJob(path, out_root / path.relative_to(root).with_suffix(f".{fmt}")))
        else:
            path = item.resolve()
            jobs.append(FileJob(path, out_root / path.with_suffix(f".{fmt}").name))
    # Inputs that differ only in their extension (a.flac, a.ogg) keep it: a.flac.wav, a.ogg.wav.
    counts: dict[Path, int] = {}
    for j in jobs:
        counts[j.target] = counts.get(j.target, 0) + 1
    jobs = [
        FileJob(j.source, j.target.with_name(f"{j.source.name}.{fmt}")) if counts[j.target] > 1 else j
        for j in jobs
    ]
    sources = {j.source for j in jobs}
    targets: dict[Path, Path] = {}
    for j in jobs:
        if j.target in sources:
            raise PlanError(f"{j.target}: the output would overwrite an input; choose another output folder")
        if j.target in targets:
            raise PlanError(f"{targets[j.target]} and {j.source} would both be written to {j.target}")
        targets[j.target] = j.source
    jobs.sort(key=lambda j: str(j.target))
    i, n = shard
    return jobs[i::n]


def smaller_options(options):
    """The options of the out-of-memory retry: half the window (at least 2 s), one window per run."""
    window = max(2.0, options.max_window_seconds / 2)
    return dataclasses.replace(options, max_window_seconds=window, batch_size=1,
                               batch_seconds=min(options.batch_seconds, window))


def failure(job: FileJob, exc: BaseException) -> FileResult:
    """The failed `FileResult` of `exc`: its one-line reason, and a traceback when it is a bug."""
    trace = ""
    if isinstance(exc, InputAudioError):
        reason = exc.reason
    elif isinstance(exc, SvcError):
        reason = str(exc)
    elif isinstance(exc, MemoryError):
        reason = str(OutOfMemoryError("the pipeline", short_cause(exc) or "MemoryError"))
    elif isinstance(exc, FloatingPointError):
        reason = f"{exc}; check the bundle with svc-run info, or try another --seed"
    elif isinstance(exc, (ValueError, OSError)):
        reason = str(exc) or type(exc).__name__
    else:
        trace = "".join(traceback.format_exception(exc))
        reason = f"internal error ({type(exc).__name__}: {short_cause(exc)}); {REPORT_HINT}"
    return FileResult(job, "failed", " ".join(reason.split()), traceback=trace)


def _is_oom(exc: BaseException | None) -> bool:
    return isinstance(exc, MemoryError)  # OutOfMemoryError is a MemoryError


class _Decided(Exception):
    """A file's result was decided while retrying it (e.g. it failed to decode the second time)."""

    def __init__(self, result: FileResult) -> None:
        self.result = result


@dataclass
class _Item:
    """One job on its way through the runner."""

    job: FileJob
    prepared: PreparedFile | None = None
    long: LongFilePlan | None = None  # a file converted in blocks (`long_file`), instead of `prepared`
    result: FileResult | None = None  # decided before rendering (skipped, failed)
    error: BaseException | None = None  # a failure that may be retried (out of memory)
    cause: BaseException | None = None  # what made `result` a failure
    claim: outputs.Claim | None = None


class BatchRunner:
    """Runs a list of jobs through one `Converter`, yielding a `FileResult` per file in order.

    skip_existing: leave existing outputs alone (resume). overwrite: replace an existing output even
    when it was converted with other settings (recorded next to it). max_duration_s: longest input
    accepted (from its header, before decoding). long_file_seconds: longer inputs are converted in blocks,
in memory that does not grow with their length (`long_file`). guard: `interrupt.catch_signals()`'s guard, so a
    signal waits until an output being written is complete. After `run`, `stopped` holds the reason
    when the batch stopped early, None otherwise, and `stop_code` the exit status that goes with it:
    EXIT_FAILED for a full disk, EXIT_USAGE for a bundle whose graph does not fit its manifest (each
    graph that fails on a file is probed once, `validate.probe_graph`).
    """

    def __init__(self, converter: Converter, skip_existing: bool = False, prefetch: int = 2, group: int = 4,
                 *, overwrite: bool = False, max_duration_s: float = MAX_DURATION_S, guard=None,
                 long_file_seconds: float = LONG_FILE_SECONDS):
        self.converter = converter
        self.long_file_seconds = long_file_seconds
        self.progress: Callable[[FileJob, float], None] | None = None  # long files: fraction written so far
        self.skip_existing = skip_existing
        self.overwrite = overwrite
        self.max_duration_s = max_duration_s
        self.prefetch = prefetch
        self.group = group
        self.guard = guard or NoGuard()
        self.stopped: str | None = None
        self.stop_code = EXIT_FAILED
        # a manifest that does not fit its graphs stops here (open sessions) or at the first failure of a graph
        self._probed = probe_open_graphs(converter.bundle)
        self.settings = outputs.conversion_settings(converter.options, converter.bundle)
        self._small: Converter | None = None

    # ----------------------------------------------------------------- admission

    def _admit(self, job: FileJob) -> _Item:
        """Skip, refuse or claim `job` before any work is spent on it."""
        item = _Item(job)
        if self.skip_existing and job.target.is_file():
            item.result = FileResult(job, "skipped", "output exists", notes=self._mismatch_note(job))
            return item
        try:
            claim = outputs.try_claim(job.target)
        except OSError as e:
            item.cause = output_write_error(outputs.claim_path(job.target), e)
            item.result = failure(job, item.cause)
            return item
        if isinstance(claim, str):
            item.result = FileResult(job, "skipped", claim)
            return item
        item.claim = claim
        if job.target.is_file():
            if self.skip_existing:  # finished by another worker meanwhile
                item.result = FileResult(job, "skipped", "output exists")
            elif not self.overwrite:
                old = outputs.read_settings(job.target)
                if old is not None and old["fingerprint"] != self.settings["fingerprint"]:
                    changed = ", ".join(outputs.settings_difference(old, self.settings))
                    item.result = FileResult(
                        job, "failed", f"{job.target} exists, converted with other settings ({changed}); pass "
                        "--overwrite to replace it, --skip-existing to keep it, or choose another --out-dir")
        if item.result is not None:
            claim.release()
            item.claim = None
        return item

    def _mismatch_note(self, job: FileJob) -> tuple[str, ...]:
        old = outputs.read_settings(job.target)
        if old is None or old["fingerprint"] == self.settings["fingerprint"]:
            return ()
        return (f"kept; it was converted with other settings ({', '.join(outputs.settings_difference(old, self.settings))})",)

    def _prepare(self, item: _Item | FileJob, converter: Converter | None = None) -> _Item:
        """Decode and prepare `item` (in the prefetch thread); a failure lands in the returned item."""
        item = _Item(item) if isinstance(item, FileJob) else item
        converter = converter or self.converter
        try:
            if read_header(item.job.source, self.max_duration_s).duration_s > self.long_file_seconds:
                item.long = plan_long_file(converter, item.job.source, self.max_duration_s)
                return item
            decoded = decode_audio(item.job.source, max_duration_s=self.max_duration_s)
            item.prepared = converter.prepare(decoded)
        except MemoryError as e:  # out of memory: retried with smaller options
            item.error = e
        except Exception as e:  # one file's failure must not stop the batch
            item.result = failure(item.job, e)
            item.cause = e
        return item

    # ----------------------------------------------------------------- the loop

    def run(self, jobs: list[FileJob]) -> Iterator[FileResult]:
        self.stopped = None
        ready: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        thread = threading.Thread(target=self._prefetch, args=(jobs, ready, stop), name="svc-prepare", daemon=True)
        thread.start()
        pending: list[_Item] = []
        try:
            done = False
            while not done and self.stopped is None:
                batch, done = self._next_group(ready)
                pending += batch
                for result in self._render(batch):
                    yield result
                    if self.stopped is not None:
                        break
                pending = [i for i in pending if i.claim is not None]
        finally:
            stop.set()
            for item in pending:
                if item.claim is not None:
                    item.claim.release()
            self._drain(ready, thread)

    def _prefetch(self, jobs: list[FileJob], ready: queue.Queue, stop: threading.Event) -> None:
        """The worker thread: admit and prepare each job in order into `ready`, then None."""
        try:
            for job in jobs:
                if stop.is_set():
                    break
                item = self._admit(job)
                if item.result is None:
                    self._prepare(item)
                if stop.is_set() and item.claim is not None:
                    item.claim.release()
                    break
                ready.put(item)
        except BaseException as e:
            ready.put(e)
        finally:
            ready.put(None)

    def _next_group(self, ready: queue.Queue) -> tuple[list[_Item], bool]:
        """The next prepared items to render together (waits for one, takes up to `group` that are ready)
        and whether the worker has finished."""
        item = ready.get()
        batch: list[_Item] = []
        while item is not None:
            if isinstance(item, BaseException):
                raise item
            batch.append(item)
            if len(batch) >= self.group:
                break
            try:
                item = ready.get_nowait()
            except queue.Empty:
                break
        return batch, item is None

    def _drain(self, ready: queue.Queue, thread: threading.Thread) -> None:
        """Release the claims of prepared files nobody will render and let the worker end (bounded wait)."""
        deadline = time.monotonic() + 2.0
        while thread.is_alive() and time.monotonic() < deadline:
            try:
                item = ready.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(item, _Item) and item.claim is not None:
                item.claim.release()
        while True:
            try:
                item = ready.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Item) and item.claim is not None:
                item.claim.release()

    def _render(self, batch: list[_Item]) -> Iterator[FileResult]:
        todo = [i for i in batch if i.prepared is not None]
        audio: dict[int, object] = {}
        if len(todo) > 1:
            try:
                rendered = self.converter.render_each([i.prepared for i in todo])
                audio = {id(i): a for i, a in zip(todo, rendered)}
            except Exception:  # out of memory or one file's fault: render one by one below, where it is pinned
                audio = {}
        for item in batch:
            if self.stopped is not None:
                break
            if item.result is None and item.long is not None:
                item.result = self._convert_long(item)
            if item.result is None:
                if item.prepared is not None and id(item) not in audio:
                    audio[id(item)] = self._render_one(item, self.converter)
                out = audio.get(id(item), item.error)
                if _is_oom(out):
                    out = self._retry_smaller(item, out)
                if isinstance(out, _Decided):
                    item.result = out.result
                elif isinstance(out, BaseException):
                    item.result = failure(item.job, out)
                    item.cause = out
                else:
                    item.result = self._write(item, out)
            if isinstance(item.cause, DiskFullError) and self.stopped is None:
                self.stopped, self.stop_code = str(item.cause), EXIT_FAILED
            if item.result.status == "failed" and self.stopped is None:
                problem = self._bundle_problem(item.cause)
                if problem is not None:
                    self.stopped, self.stop_code = problem, EXIT_USAGE
                    item.result = FileResult(item.job, "failed", problem)
            if item.claim is not None:
                item.claim.release()
                item.claim = None
            item.prepared = item.long = None
            yield item.result

    def _bundle_problem(self, exc: BaseException | None) -> str | None:
        """After a graph failed on a file (not out of memory): probe that graph once; the BundleError's text
        when the graph does not fit its manifest (every file would fail), else None."""
        graph = getattr(exc, "graph", None)
        if not isinstance(exc, ModelRunError) or isinstance(exc, MemoryError) or graph in self._probed:
            return None
        self._probed.add(graph)
        try:
            probe_open_graphs(self.converter.bundle, {graph})
        except BundleError as e:
            return str(e)
        return None

    def _render_one(self, item: _Item, converter: Converter):
        """Audio of one prepared file, or the exception that stopped it (`_Decided`: a failed re-prepare)."""
        if item.prepared.released:  # a failed group render consumed some of its slices: prepare again
            self._prepare(item, converter)
            if item.prepared is None:
                return item.error if item.error is not None else _Decided(item.result)
        try:
            return converter.render_each([item.prepared])[0]
        except Exception as e:
            return e

    def _retry_smaller(self, item: _Item, first: BaseException):
        """Out of memory: prepare and render `item` again, once, with `smaller_options`."""
        item.prepared = item.error = item.result = None
        self._prepare(item, self._smaller())
        if item.result is not None:
            return _Decided(item.result)
        out = item.error if item.error is not None else self._render_one(item, self._small)
        if not _is_oom(out):
            if item.prepared is not None and not isinstance(out, BaseException):
                item.prepared.notes.append(f"ran out of memory ({short_cause(first)}); converted with a "
                                           f"{self._small.options.max_window_seconds:g} s window and batch 1")
            return out
        o = self._small.options
        where = out.graph if isinstance(out, OutOfMemoryError) else "the pipeline"
        cause = out.cause if isinstance(out, OutOfMemoryError) else (short_cause(out) or "MemoryError")
        return OutOfMemoryError(where, f"{cause}; also with a {o.max_window_seconds:g} s window and batch 1")

    def _write(self, item: _Item, audio) -> FileResult:
        sr = self.converter.sr
        notes = tuple(item.prepared.notes) if item.prepared is not None else ()

        def write() -> float:
            try:
                write_audio_atomic(item.job.target, audio, sr, fmt=self.converter.options.output_format)
            except ValueError as e:
                raise OutputWriteError(item.job.target, short_cause(e)) from e
            return len(audio) / sr

        with self.guard.deferred():
            return self._finished(item.job, write, notes)

    def _convert_long(self, item: _Item) -> FileResult:
        """Convert a long file in blocks straight into its output (retried once with `smaller_options` when
        out of memory). An interrupt abandons it: its temporary output is removed."""
        notes = list(item.long.notes)
        converter = self.converter
        for attempt in range(2):
            try:
                progress = None if self.progress is None else functools.partial(self.progress, item.job)
                write = functools.partial(convert_long_file, converter, item.long, item.job.target,
                                          converter.options.output_format, progress)
                return self._finished(item.job, write, tuple(notes))
            except MemoryError as e:
                if attempt:
                    o = converter.options
                    cause = e.cause if isinstance(e, OutOfMemoryError) else (short_cause(e) or "MemoryError")
                    item.cause = OutOfMemoryError(getattr(e, "graph", "the pipeline"),
                                                  f"{cause}; also with a {o.max_window_seconds:g} s window and batch 1")
                    return failure(item.job, item.cause)
                converter = self._smaller()
                notes.append(f"ran out of memory ({short_cause(e)}); converted with a "
                             f"{converter.options.max_window_seconds:g} s window and batch 1")
            except Exception as e:
                item.cause = e
                return failure(item.job, e)
        raise AssertionError("unreachable")

    def _smaller(self) -> Converter:
        if self._small is None:
            self._small = Converter(self.converter.bundle, smaller_options(self.converter.options))
        return self._small

    def _finished(self, job: FileJob, write, notes: tuple[str, ...]) -> FileResult:
        """Run `write` (which writes job.target atomically and returns the seconds written), then record the
        settings next to the output; a write failure becomes the file's result (a full disk stops the batch)."""
        try:
            seconds = write()
            try:
                outputs.write_settings(job.target, self.settings)
            except OSError as e:  # an output whose settings are unknown is not finished: remove it
                job.target.unlink(missing_ok=True)
                raise output_write_error(outputs.settings_path(job.target), e) from e
        except DiskFullError as e:
            self.stopped, self.stop_code = str(e), EXIT_FAILED
            return FileResult(job, "failed", str(e))
        except OutputWriteError as e:
            return FileResult(job, "failed", str(e))
        except OSError as e:
            return failure(job, OutputWriteError(job.target, short_cause(e)))
        return FileResult(job, "converted", audio_seconds=seconds, notes=notes)
