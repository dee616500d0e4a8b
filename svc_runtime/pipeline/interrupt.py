"""SIGINT / SIGTERM as an exception the batch loop can clean up after.

Inside `catch_signals()` either signal raises `Interrupted` in the main thread (after the
graph run in progress returns), so the file being converted is abandoned: its temporary
output is removed by `atomic_output`, its claim released, and the caller prints a summary.
Around short critical steps (writing an output and its settings) `deferred()` holds the
signal back until the step is done, so a file is either fully written or not at all.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived. `exit_code`: 128 + the signal number (130, 143)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(signal.Signals(signum).name)


class SignalGuard:
    """Turns the signals into `Interrupted`, except inside `deferred()` blocks."""

    def __init__(self) -> None:
        self._depth = 0
        self.pending: int | None = None

    def handler(self, signum: int, frame) -> None:
        if self._depth:
            self.pending = self.pending or signum
            return
        raise Interrupted(signum)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold SIGINT / SIGTERM until the block ends, then raise `Interrupted` for the first one."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if not self._depth and self.pending is not None:
            raise Interrupted(self.pending)


class NoGuard:
    """The `SignalGuard` interface when signals are not caught (library use, other threads)."""

    @contextmanager
    def deferred(self) -> Iterator[None]:
        yield


@contextmanager
def catch_signals() -> Iterator[SignalGuard | NoGuard]:
    """Install the SIGINT / SIGTERM handlers for the block (main thread only), then restore them."""
    if threading.current_thread() is not threading.main_thread():
        yield NoGuard()
        return
    guard = SignalGuard()
    previous = {s: signal.signal(s, guard.handler) for s in SIGNALS}
    try:
        yield guard
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
