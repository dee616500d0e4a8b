"""Run one function over many files in worker processes, with a rich progress bar."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

Job = TypeVar("Job")
Result = TypeVar("Result")


def run_jobs(
    function: Callable[[Job], Result],
    jobs: Sequence[Job],
    workers: int,
    label: str,
    console: Console | None = None,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
    start_method: str = "fork",
) -> Iterator[Result]:
    """Yield ``function(job)`` for every job (in completion order) while a progress bar advances.

    ``workers`` <= 1 runs in this process (``initializer`` is then called here once).
    ``function`` must catch its own per-job errors: an exception stops the run.
    ``start_method``: "spawn" for workers that run torch (a forked OpenMP runtime can hang).
    """
    console = console or Console(stderr=True)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=len(jobs))
        if workers <= 1 or len(jobs) <= 1:
            if initializer is not None:
                initializer(*initargs)
            for job in jobs:
                yield function(job)
                progress.advance(task)
            return
        context = multiprocessing.get_context(start_method)
        with ProcessPoolExecutor(
            max_workers=workers, initializer=initializer, initargs=initargs, mp_context=context
        ) as pool:
            futures = [pool.submit(function, job) for job in jobs]
            for future in as_completed(futures):
                yield future.result()
                progress.advance(task)


__all__ = ["run_jobs"]
