"""Output-folder bookkeeping shared by every worker writing into one folder.

- Claims: before converting a file a worker takes an exclusive `flock` on
  ``.<output name>.claim`` beside the output. The kernel drops the lock when the process
  ends (even by kill -9), so a claim of a dead worker is free again without any timeout;
  the file itself is removed when the work is done (or by `remove_stale_files`).
- Settings: every finished output gets ``.<output name>.settings.json`` with the settings
  it was converted with (options and the bundle's graph hashes), so a later run can tell
  whether an existing output matches its own settings.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from svc_runtime.atomic import atomic_output, remove_stale_temp_files

CLAIM_SUFFIX = ".claim"
SETTINGS_SUFFIX = ".settings.json"
NOT_OUTPUT_SETTINGS = ("batch_size", "batch_seconds")
"""Options that change speed and memory, not the converted audio."""


def claim_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{CLAIM_SUFFIX}")


def settings_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{SETTINGS_SUFFIX}")


class Claim:
    """An exclusive claim on one output (held until `release`)."""

    def __init__(self, target: Path, fd: int | None) -> None:
        self.target = target
        self._fd = fd  # None: the file system has no locks, nothing is held

    def release(self) -> None:
        """Remove the claim file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        try:
            claim_path(self.target).unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return "another worker"
    return f"worker {text}" if text else "another worker"


def try_claim(target: Path) -> Claim | str:
    """Claim `target` for this process: a `Claim`, or a message naming the worker that holds it.
    On a file system without locks (ENOLCK) the claim holds nothing; OSError when the folder is not writable."""
    path = claim_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(8):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return f"being converted by {_holder(path)}"
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP):  # a file system without locks: no claim
                path.unlink(missing_ok=True)
                return Claim(target, None)
            raise
        # The holder may have removed the file between our open and lock: only a lock on the
        # file that is still at `path` counts.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {os.uname().nodename}".encode())
        return Claim(target, fd)
    return f"claim file {path} keeps changing; another worker is busy with it"


def remove_stale_files(out_dir: Path) -> int:
    """Remove leftovers of dead workers under `out_dir`: temp files (`atomic.remove_stale_temp_files`)
    and claim files nobody holds. Returns how many files were removed."""
    removed = len(remove_stale_temp_files(out_dir))
    if not out_dir.is_dir():
        return removed
    for path in out_dir.rglob(f".*{CLAIM_SUFFIX}"):
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by a live worker (or no locks here): leave it
            os.close(fd)
            continue
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)
    return removed


# --------------------------------------------------------------------------- settings


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def conversion_settings(options: Any, bundle: Any) -> dict[str, Any]:
    """What decides an output's audio: the options (less NOT_OUTPUT_SETTINGS), the bundle's graph
    hashes and the precision. {"fingerprint": sha256 of the rest, "options": ..., "bundle": ...}."""
    opts = {k: _plain(v) for k, v in dataclasses.asdict(options).items() if k not in NOT_OUTPUT_SETTINGS}
    manifest = bundle.manifest
    graphs = sorted(g.sha256 + (g.data_sha256 or "") for g in manifest.graphs.values())  # weights kept apart too
    record = {"options": opts, "bundle": {"graphs": graphs, "precision": getattr(bundle, "precision", "fp32")}}
    record["fingerprint"] = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
    return record


def read_settings(target: Path) -> dict[str, Any] | None:
    """The settings recorded next to `target` (None: none recorded or unreadable)."""
    try:
        data = json.loads(settings_path(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "fingerprint" in data else None


def write_settings(target: Path, settings: dict[str, Any]) -> None:
    with atomic_output(settings_path(target), text=True) as handle:
        handle.write(json.dumps(settings, indent=1, sort_keys=True) + "\n")


def settings_difference(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Names of the settings that differ between two records ("bundle" for another model)."""
    names = sorted(k for k in set(old.get("options", {})) | set(new.get("options", {}))
                   if old.get("options", {}).get(k) != new.get("options", {}).get(k))
    if old.get("bundle") != new.get("bundle"):
        names.append("bundle")
    return names or ["fingerprint"]
