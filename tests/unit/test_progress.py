"""Progress text: lr in scientific notation, the run's ETA, the bar on a terminal, log lines without."""

import pytest

from pretrain.runtime.eta import format_duration
from pretrain.train.progress import (
    ProgressLog,
    RunClock,
    StepProgressBar,
    format_metric,
    progress_callback,
)


def test_learning_rates_are_shown_in_scientific_notation():
    assert format_metric("train/lr", 2.34e-05) == "2.34e-05"
    assert format_metric("train/loss", 0.612345) == "0.6123"


def test_the_eta_covers_the_whole_run_from_the_steps_done_since_start(monkeypatch):
    clock = RunClock()
    now = [100.0]
    monkeypatch.setattr("pretrain.train.progress.time.perf_counter", lambda: now[0])
    clock.start(step=10)  # resumed at step 10
    assert clock.eta(10, 100) is None and clock.summary(10, 100).endswith("ETA ?")
    now[0] = 130.0  # 30 s for 15 steps: 2 s a step, 75 steps left
    assert clock.eta(25, 100) == pytest.approx(150.0)
    assert clock.summary(25, 100) == "step 25/100 · elapsed 0:00:30 · ETA 0:02:30"
    assert format_duration(3 * 3600 + 61) == "3:01:01"


def test_a_terminal_gets_the_bar_and_anything_else_log_lines():
    assert isinstance(progress_callback(5, interactive=True), StepProgressBar)
    assert isinstance(progress_callback(5, interactive=False), ProgressLog)
