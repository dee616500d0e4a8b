"""What a user sees while training: a progress bar with steps/s and ETA, and a loss line every few steps.

The loss line carries the step, steps/s and ETA too, so that a log file (no terminal, where
the bar is not drawn) shows the same progress. Only the main process reports.
"""

from __future__ import annotations

import time
from collections import deque

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

CPU_LOG_EVERY = 10
"""On the CPU a step takes seconds: losses are printed at least every this many steps."""


def console_interval(log_interval: int, on_gpu: bool, log_every: int | None = None) -> int:
    """Steps between loss lines: ``log_every`` if given, else the config's ``log_interval`` on a GPU
    and at most `CPU_LOG_EVERY` on the CPU."""
    if log_every is not None:
        return max(1, log_every)
    return max(1, log_interval if on_gpu else min(log_interval, CPU_LOG_EVERY))


class StepRate:
    """Steps per second over the last ``window`` steps (the first steps, slowed by warm-up, drop out)."""

    def __init__(self, window: int = 20) -> None:
        self.times: deque[float] = deque(maxlen=window + 1)

    def tick(self, now: float | None = None) -> None:
        self.times.append(time.perf_counter() if now is None else now)

    @property
    def per_second(self) -> float | None:
        if len(self.times) < 2 or self.times[-1] <= self.times[0]:
            return None
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])

    def eta_seconds(self, remaining_steps: int) -> float | None:
        rate = self.per_second
        return None if rate is None else remaining_steps / rate


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def loss_line(step: int, last_step: int | None, epoch: int, rate: StepRate, losses: dict[str, float], lr: float) -> str:
    """``step 10/40 epoch 1 | 0.52 steps/s, ETA 0:58 | lr 1e-4 | mel=.. kl=.. d=.. g=..`` (plain text)."""
    per_second = rate.per_second
    speed = "?" if per_second is None else (f"{per_second:.2f}" if per_second < 10 else f"{per_second:.0f}")
    total = "" if last_step is None else f"/{last_step}"
    eta = "" if last_step is None else f", ETA {format_duration(rate.eta_seconds(max(0, last_step - step)))}"
    parts = " ".join(f"{k.split('/')[-1]}={v:.3f}" for k, v in losses.items()
                     if k.startswith("loss/g/") and not k.endswith("total"))
    return (f"step {step}{total} epoch {epoch} | {speed} steps/s{eta} | lr {lr:.3g} | {parts} "
            f"d={losses['loss/d/total']:.3f} g={losses['loss/g/total']:.3f}")


class TrainingProgress:
    """A rich progress bar over the steps of this run plus `loss_line` every ``every`` steps.

    ``first_step``: the step this run starts at; ``last_step``: the last step it will train
    (None: unknown, no ETA).
    """

    def __init__(self, console: Console, first_step: int, last_step: int | None, every: int) -> None:
        self.console = console
        self.last_step = last_step
        self.every = every
        self.rate = StepRate()
        self.bar = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[speed]} steps/s"), TimeRemainingColumn(),
            console=console, transient=True,
        )
        total = None if last_step is None else max(1, last_step - first_step + 1)
        self.task = self.bar.add_task("train", total=total, speed="?")

    def __enter__(self) -> TrainingProgress:
        self.rate.tick()
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def step_done(self, step: int, epoch: int, losses: dict[str, float], lr: float) -> None:
        self.rate.tick()
        per_second = self.rate.per_second
        self.bar.update(self.task, advance=1, speed="?" if per_second is None else f"{per_second:.2f}")
        if step % self.every == 0:
            self.bar.console.print(escape(loss_line(step, self.last_step, epoch, self.rate, losses, lr)))

    def print(self, message: str) -> None:
        """A message above the bar (rich markup allowed)."""
        self.bar.console.print(message)


__all__ = ["CPU_LOG_EVERY", "StepRate", "TrainingProgress", "console_interval", "format_duration", "loss_line"]
