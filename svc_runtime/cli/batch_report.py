"""The run-and-report half of `svc-run convert`: progress, one line per failed file, the summary,
how to resume, and the exit status.

Exit status: 0 every file converted or skipped; 1 some files failed, or the batch stopped early
(disk full); 2 the bundle's graphs do not fit its manifest (found by probing the first graph that
failed); 130 / 143 interrupted by SIGINT / SIGTERM (the file in progress is abandoned, its
temporary output removed). A traceback is printed only for an internal error (a bug).
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from svc_runtime.errors import EXIT_FAILED
from svc_runtime.pipeline.batch import BatchRunner, FileJob, FileResult
from svc_runtime.pipeline.interrupt import Interrupted, catch_signals
from svc_runtime.pipeline.outputs import remove_stale_files

RESUME_HINT = "run the same command again with --skip-existing to convert the rest"


def run_batch(runner: BatchRunner, jobs: list[FileJob], out_dir: Path, console: Console) -> int:
    """Convert `jobs` with `runner` under SIGINT / SIGTERM handling; print progress and the summary;
    return the exit status."""
    removed = remove_stale_files(out_dir)
    if removed:
        console.print(f"[dim]removed {removed} temporary / claim file(s) left by an earlier run that was stopped[/dim]")
    results: list[FileResult] = []
    interrupted: Interrupted | None = None
    t0 = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with catch_signals() as guard:
        runner.guard = guard
        try:
            with Progress(*columns, console=console, transient=False) as progress:
                task = progress.add_task("converting", total=len(jobs))
                within = progress.add_task("", total=100, visible=False)  # percent of a long file written

                def long_file_progress(job: FileJob, fraction: float) -> None:  # files converted in blocks
                    progress.update(within, completed=round(100 * fraction), visible=fraction < 1.0,
                                    description=f"  [dim]{escape(job.source.name)} (%)[/dim]")

                runner.progress = long_file_progress
                for result in runner.run(jobs):
                    progress.update(within, visible=False)
                    results.append(result)
                    report(progress.console, result)
                    name = escape(result.job.source.name)
                    progress.update(task, advance=1, description=f"converting [dim]{name}[/dim]")
        except Interrupted as e:
            interrupted = e
    wall = time.perf_counter() - t0
    console.print(summary_table(results, wall, total=len(jobs)))
    left = len(jobs) - len(results)
    if interrupted is not None:
        console.print(f"[yellow]interrupted by {interrupted}[/yellow]: {left} file(s) not converted (the one in "
                      f"progress was abandoned, nothing partial is left); {RESUME_HINT}")
        return interrupted.exit_code
    if runner.stopped is not None:
        resume = f"; {RESUME_HINT}" if runner.stop_code == EXIT_FAILED else ""
        console.print(f"[red]stopped[/red]: {escape(runner.stopped)}; {left} file(s) not attempted{resume}")
        return runner.stop_code
    return EXIT_FAILED if any(r.status == "failed" for r in results) else 0


def report(console: Console, result: FileResult) -> None:
    """One line per failed file (`file: what is wrong; what to do`) and per note; a bug's traceback."""
    source = result.job.source
    if result.traceback:
        console.print(escape(result.traceback.rstrip()), highlight=False)
    if result.status == "failed":
        console.print(f"[red]failed[/red] {escape(f'{source}: {result.reason}')}")
    for note in result.notes:
        console.print(f"[yellow]note[/yellow] {escape(f'{source}: {note}')}")


def summary_table(results: list[FileResult], wall_seconds: float, total: int | None = None) -> Table:
    """Files, audio seconds, wall seconds, real-time factor and the failed files of one run."""
    converted = [r for r in results if r.status == "converted"]
    failed = [r for r in results if r.status == "failed"]
    skipped = [r for r in results if r.status == "skipped"]
    audio = sum(r.audio_seconds for r in converted)
    table = Table(title="svc-run convert")
    columns = ["files", "converted", "skipped", "failed"]
    row = [str(total if total is not None else len(results)), str(len(converted)), str(len(skipped)), str(len(failed))]
    if total is not None and total > len(results):
        columns.append("not done")
        row.append(str(total - len(results)))
    for column in (*columns, "audio s", "wall s", "RTF"):
        table.add_column(column, justify="right")
    rtf = f"{wall_seconds / audio:.3f}" if audio > 0 else "-"
    table.add_row(*row, f"{audio:.1f}", f"{wall_seconds:.1f}", rtf)
    if failed:
        table.caption = escape("failed: " + "; ".join(f"{r.job.source.name} ({r.reason})" for r in failed))
    return table
