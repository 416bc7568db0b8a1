"""The ETA of a command of stages: each stage priced by its own work x its kind's measured rate."""

import pytest

from pretrain.runtime.eta import StageEta, StageWork

# The quickstart --small: pretraining 192 steps, then two fine-tunes of 72 steps each.
QUICKSTART = [
    StageWork("pretrain", "pretrain", 192),
    StageWork("finetune pretrained seed 0", "finetune", 72),
    StageWork("finetune scratch seed 0", "finetune", 72),
]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_no_eta_before_a_stage_has_finished():
    clock = Clock()
    eta = StageEta(QUICKSTART, clock)
    clock.now += 30
    assert eta.remaining_seconds() is None
    assert eta.line() == "stage 1/3 (pretrain) · elapsed 0:00:30 · ETA ?"


def test_an_unmeasured_kind_is_priced_at_the_finished_work_rate_then_at_its_own():
    clock = Clock()
    eta = StageEta(QUICKSTART, clock)
    clock.now += 384  # pretraining: 2 s per step
    assert eta.finish() == 384
    assert eta.remaining_seconds() == pytest.approx(2 * 144)  # fine-tunes not measured yet: 2 s per step
    assert eta.line() == "stage 2/3 (finetune pretrained seed 0) · elapsed 0:06:24 · ETA 0:04:48"
    clock.now += 36  # the first fine-tune: 0.5 s per step
    eta.finish()
    assert eta.seconds_per_unit("finetune") == 0.5 and eta.seconds_per_unit("pretrain") == 2
    assert eta.remaining_seconds() == 36  # not 384 + 36: elapsed / stages done x stages left said 210
    assert eta.line() == "stage 3/3 (finetune scratch seed 0) · elapsed 0:07:00 · ETA 0:00:36"


def test_the_current_stage_counts_down_and_never_below_zero():
    clock = Clock()
    eta = StageEta(QUICKSTART, clock)
    clock.now += 192
    eta.finish()
    clock.now += 50  # 50 s into the first fine-tune, priced 72 s; the second another 72 s
    assert eta.remaining_seconds() == 22 + 72
    clock.now += 100  # running late: the current stage is due now, the next still costs its price
    assert eta.remaining_seconds() == 72


def test_a_stage_that_did_other_work_than_planned_is_priced_by_what_it_did():
    clock = Clock()
    eta = StageEta([StageWork("a", "x", 100), StageWork("b", "x", 10)], clock)
    clock.now += 20
    eta.finish(units=10)  # stopped early after 10 units: 2 s per unit
    assert eta.remaining_seconds() == 20


def test_work_in_another_unit_never_prices_a_stage():
    clock = Clock()
    stages = [
        StageWork("data", "data", 16, "videos"),
        StageWork("pretrain", "pretrain", 10),
        StageWork("kernels", "kernels", 0),  # no work: costs nothing
        StageWork("predict", "predict", 4, "videos"),
    ]
    eta = StageEta(stages, clock)
    clock.now += 8
    eta.finish()  # 0.5 s per video
    assert eta.remaining_seconds() is None  # steps: not measured yet
    clock.now += 30
    eta.finish()  # 3 s per step
    assert eta.remaining_seconds() == 0 + 0.5 * 4
