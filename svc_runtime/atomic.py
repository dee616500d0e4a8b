"""Atomic file output: write beside the target, fsync, then rename over it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


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
    0600, and is removed if the block raises: a crash never leaves a partial target.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
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
