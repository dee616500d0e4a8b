"""What a user sees while training: steps/s and ETA from the recent steps, losses every few steps on the CPU."""

from __future__ import annotations

import io

from rich.console import Console

from svc_train.training.progress import (
    CPU_LOG_EVERY,
    StepRate,
    TrainingProgress,
    console_interval,
    format_duration,
    loss_line,
)

LOSSES = {"loss/d/total": 2.5, "loss/g/total": 61.25, "loss/g/gen": 1.5, "loss/g/mel": 56.0, "loss/g/kl": 1.75,
          "loss/g/total_extra": 0.0}


def test_the_console_interval_is_short_on_the_cpu():
    assert console_interval(200, on_gpu=True) == 200
    assert console_interval(200, on_gpu=False) == CPU_LOG_EVERY == 10
    assert console_interval(6, on_gpu=False) == 6
    assert console_interval(200, on_gpu=False, log_every=3) == 3


def test_step_rate_uses_the_recent_window():
    rate = StepRate(window=4)
    for t in (0.0, 10.0, 10.5, 11.0, 11.5, 12.0):  # a slow first step drops out of the window
        rate.tick(t)
    assert abs(rate.per_second - 2.0) < 1e-9
    assert abs(rate.eta_seconds(30) - 15.0) < 1e-9
    assert StepRate().per_second is None


def test_loss_line_carries_step_speed_eta_and_losses():
    rate = StepRate()
    for t in (0.0, 2.0, 4.0):
        rate.tick(t)
    line = loss_line(10, 49, 2, rate, LOSSES, 1e-4)
    assert line.startswith("step 10/49 epoch 2 | 0.50 steps/s, ETA 1:18 | lr 0.0001 | ")
    assert "mel=56.000" in line and "kl=1.750" in line and line.endswith("d=2.500 g=61.250")
    assert format_duration(3725) == "1:02:05" and format_duration(None) == "?"


def test_progress_prints_a_loss_line_every_n_steps_to_a_log():
    stream = io.StringIO()
    console = Console(file=stream, width=200, force_terminal=False)
    with TrainingProgress(console, first_step=0, last_step=9, every=4) as progress:
        for step in range(10):
            progress.step_done(step, 1, LOSSES, 1e-4)
    lines = [line for line in stream.getvalue().splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["0/9", "4/9", "8/9"]
