"""Batch conversion of many files: discovery, output mapping, sharding, and a prefetching run loop.

Decoding, resampling and feature extraction of the next files run in a worker thread
while the generator renders the current ones; prepared files that are ready together
are rendered together, so equal-length chunks of different files share a batch.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from svc_runtime.audio.decode import AudioInputError, decode_audio
from svc_runtime.audio.write import write_audio_atomic
from svc_runtime.pipeline.convert import Converter, PreparedFile
from svc_runtime.signal.f0 import NoVoiceError

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
    """What happened to one file. status: converted, skipped or failed."""

    job: FileJob
    status: str
    reason: str = ""
    audio_seconds: float = 0.0
    notes: tuple[str, ...] = ()


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


class BatchRunner:
    """Runs a list of jobs through one `Converter`, yielding a `FileResult` per file in order."""

    def __init__(self, converter: Converter, skip_existing: bool = False, prefetch: int = 2, group: int = 4):
        self.converter = converter
        self.skip_existing = skip_existing
        self.prefetch = prefetch
        self.group = group

    def _prepare(self, job: FileJob) -> tuple[FileJob, PreparedFile | None, FileResult | None]:
        try:
            decoded = decode_audio(job.source)
            return job, self.converter.prepare(decoded), None
        except (AudioInputError, NoVoiceError) as e:
            reason = e.reason if isinstance(e, AudioInputError) else str(e)
            return job, None, FileResult(job, "failed", reason)
        except (ValueError, RuntimeError, FloatingPointError, OSError, MemoryError) as e:
            return job, None, FileResult(job, "failed", f"{type(e).__name__}: {e}")
        except Exception as e:  # noqa: BLE001 - one file's unexpected failure must not stop the batch
            return job, None, FileResult(job, "failed", f"internal error, please report: {type(e).__name__}: {e}")

    def run(self, jobs: list[FileJob]) -> Iterator[FileResult]:
        todo = []
        for job in jobs:
            if self.skip_existing and job.target.is_file():
                yield FileResult(job, "skipped", "output exists")
            else:
                todo.append(job)
        ready: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def worker() -> None:
            try:
                for job in todo:
                    if stop.is_set():
                        break
                    ready.put(self._prepare(job))
            finally:
                ready.put(None)

        thread = threading.Thread(target=worker, name="svc-prepare", daemon=True)
        thread.start()
        try:
            done = False
            while not done:
                item = ready.get()
                batch = []
                while item is not None:
                    batch.append(item)
                    if len(batch) >= self.group:
                        break
                    try:
                        item = ready.get_nowait()
                    except queue.Empty:
                        break
                if item is None:
                    done = True
                yield from self._render(batch)
        finally:
            stop.set()
            while thread.is_alive():
                try:
                    ready.get(timeout=0.1)
                except queue.Empty:
                    pass
            thread.join()

    def _render(self, batch) -> Iterator[FileResult]:
        prepared = [(job, p) for job, p, failed in batch if p is not None]
        outputs: dict[Path, object] = {}
        if len(prepared) > 1:
            try:
                audios = self.converter.render_each([p for _, p in prepared])
                outputs = {job.source: a for (job, _), a in zip(prepared, audios)}
            except (ValueError, RuntimeError, FloatingPointError, MemoryError):
                outputs = {}  # render one by one below, so the failure is pinned on its file
        for job, p in prepared:
            if job.source not in outputs:
                if p.released:  # the failed group render consumed some of its slices: prepare it again
                    _, p, failed = self._prepare(job)
                    if failed is not None:
                        outputs[job.source] = ValueError(failed.reason)
                        continue
                try:
                    outputs[job.source] = self.converter.render([p])[0]
                except (ValueError, RuntimeError, FloatingPointError, MemoryError) as e:
                    outputs[job.source] = e
        sr = self.converter.sr
        fmt = self.converter.options.output_format
        for job, p, failed in batch:
            if failed is not None:
                yield failed
                continue
            audio = outputs[job.source]
            if isinstance(audio, Exception):
                yield FileResult(job, "failed", f"{type(audio).__name__}: {audio}")
                continue
            try:
                write_audio_atomic(job.target, audio, sr, fmt=fmt)
            except (OSError, ValueError) as e:
                yield FileResult(job, "failed", f"cannot write {job.target}: {e}")
                continue
            yield FileResult(job, "converted", audio_seconds=len(audio) / sr, notes=tuple(p.notes))


def elapsed(t0: float) -> float:
    return time.perf_counter() - t0
