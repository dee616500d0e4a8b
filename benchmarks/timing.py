"""Stage timers and summary statistics (median, spread) for the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator


class StageTimer:
    """Wall seconds accumulated per named stage (`with timer.stage("content"): ...`)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t0

    def wrap(self, name: str, fn: Callable) -> Callable:
        """`fn` with each call's wall time added to stage `name`."""

        def timed(*args, **kwargs):
            with self.stage(name):
                return fn(*args, **kwargs)

        return timed

    def as_dict(self) -> dict[str, float]:
        return dict(self.seconds)


@dataclass(frozen=True)
class Summary:
    """Median and spread of repeated measurements (seconds or a ratio)."""

    median: float
    minimum: float
    maximum: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> "Summary":
        if not values:
            raise ValueError("no measurements to summarise")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def as_dict(self) -> dict[str, float]:
        return {"median": self.median, "min": self.minimum, "max": self.maximum, "n": self.n}


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages (the CPU is shared: note it next to every result)."""
    with open("/proc/loadavg", encoding="ascii") as handle:
        one, five, fifteen = handle.read().split()[:3]
    return float(one), float(five), float(fifteen)
