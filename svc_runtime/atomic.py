"""Atomic file output: write beside the target, fsync, then rename over it.

Temporary files are named ``.<target name>.<pid>-<host>.<random>.part`` so that a later run
can tell its own leftovers (`remove_stale_temp_files`): a file whose writer process is gone
(killed, power loss) is removed, one of a live writer is left alone.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

TEMP_SUFFIX = ".part"
_TEMP_NAME = re.compile(r"^\..+\.(?P<pid>\d+)-(?P<host>[^.]*)\.[^.]+\.part$")
LEGACY_TEMP_AGE_S = 3600.0
"""A `.part` file without a writer pid (older versions) counts as stale after this many seconds."""


def host_tag() -> str:
    """This machine's name as used in temp and claim file names (dots and slashes removed)."""
    return re.sub(r"[^A-Za-z0-9_-]", "", socket.gethostname())[:32] or "host"


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _default_file_mode() -> int:
    """0666 less the process umask: the mode `open()` would give a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_output(path: str | os.PathLike, text: bool = False) -> Iterator[IO]:
    """Yield a file handle whose content replaces `path` only if the block completes.

    The temporary file lives in the target's folder (same file system, so the rename is
    atomic), is fsynced before the rename, gets the usual file mode rather than mkstemp's
    0600, and is removed if the block raises (any exception, KeyboardInterrupt and the
    signal exceptions of `svc-run` included): a crash never leaves a partial target.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.{os.getpid()}-{host_tag()}.", suffix=TEMP_SUFFIX, dir=target.parent
    )
    try:
        mode = "w" if text else "wb"
        kwargs = {"encoding": "utf-8", "newline": "\n"} if text else {}
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def is_stale_temp(path: Path, now: float | None = None) -> bool:
    """True for a temp file of `atomic_output` whose writer on this host is no longer running
    (or, for names without a pid, that is older than LEGACY_TEMP_AGE_S)."""
    if not (path.name.startswith(".") and path.name.endswith(TEMP_SUFFIX)):
        return False
    match = _TEMP_NAME.match(path.name)
    if match:
        if match["host"] != host_tag():
            return False
        return not pid_alive(int(match["pid"]))
    try:
        age = (now or time.time()) - path.lstat().st_mtime
    except FileNotFoundError:
        return False
    return age > LEGACY_TEMP_AGE_S


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Remove the stale temp files (`is_stale_temp`) under `folder`, recursively; return them."""
    root = Path(folder)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    now = time.time()
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            if is_stale_temp(path, now):
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                removed.append(path)
    return removed
