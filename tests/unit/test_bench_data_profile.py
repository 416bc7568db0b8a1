"""`tubelet bench data --profile`: per-clip CPU ms per loader stage, from the stage clock."""

from __future__ import annotations

import time

import pytest

from pretrain.bench.data_profile import ROWS, profile_stages
from pretrain.cli import main
from pretrain.data.stage_clock import CLOCK, StageClock


def test_nested_stages_count_only_their_own_time():
    clock = StageClock()
    clock.reset(enabled=True)
    started = time.perf_counter_ns()
    with clock.stage("collate"):
        time.sleep(0.02)
        with clock.stage("crop_resize"):
            time.sleep(0.03)
    elapsed = time.perf_counter_ns() - started
    assert clock.ns["collate"] >= 0.02e9 and clock.ns["crop_resize"] >= 0.03e9
    assert clock.ns["collate"] + clock.ns["crop_resize"] <= elapsed  # the inner time counted once
    timed = list(clock.timed("read", iter([1, 2, 3])))
    assert timed == [1, 2, 3] and clock.ns["read"] > 0
    clock.reset(enabled=False)
    with clock.stage("decode"):
        time.sleep(0.001)
    assert clock.ns["decode"] == 0  # off: nothing counted


def test_profile_attributes_the_cpu_time_to_the_stages(train_encoded_shards):
    profile = profile_stages(str(train_encoded_shards), num_sample=2, clips=16)
    stages = profile.ms_per_clip
    assert set(stages) == set(ROWS)
    for stage in ("read", "demux", "decode", "crop_resize", "masks", "collate"):
        assert stages[stage] > 0, stage
    assert stages["shared_memory"] >= 0  # a difference of two timings: may round to 0
    assert stages["convert"] == 0  # batches ship YUV 4:2:0: no colour conversion on the loader
    claimed = sum(value for stage, value in stages.items() if stage != "shared_memory")
    assert claimed == pytest.approx(profile.cpu_ms_per_clip, rel=0.01, abs=0.01)
    assert not CLOCK.enabled  # the clock is off again for everything that follows


def test_cli_prints_a_row_per_stage(train_encoded_shards, capsys):
    assert main(["bench", "data", str(train_encoded_shards), "--profile", "--clips", "8"]) == 0
    out = capsys.readouterr().out
    for label in (
        "shard read + tar parsing",
        "demux",
        "decode",
        "colour conversion",
        "crop + resize",
        "masks",
    ):
        assert label in out
    assert "num_sample=1" in out and "num_sample=4" in out
