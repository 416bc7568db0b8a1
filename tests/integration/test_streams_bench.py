"""`tubelet bench data` runs end to end on real shards and reports every figure."""

from __future__ import annotations

import json

import pytest
from stream_shards import build_ucf_shards

from pretrain.cli import main


@pytest.mark.slow
def test_bench_data_json_reports_every_figure(tmp_path, capsys):
    shards = build_ucf_shards(tmp_path, frames=70)  # long enough for a 16-frame, stride-4 window
    assert (
        main(
            [
                "bench",
                "data",
                str(shards),
                "--json",
                "--clips",
                "8",
                "--multiview-videos",
                "1",
                "--rounds",
                "1",
            ]
        )
        == 0
    )
    figures = json.loads(capsys.readouterr().out)
    for key in (
        "clips_per_s",
        "floor_clips_per_s",
        "baseline_clips_per_s",
        "multiview_speedup",
        "clips_per_s_num_sample4",
        "repeated_sampling_speedup",
        "pipeline_over_floor",
    ):
        assert figures[key] > 0, key
    rounds = figures["per_round"]
    assert len(rounds["clips_per_s"]) == len(rounds["floor_clips_per_s"]) == 1
    assert max(rounds["clips_per_s"]) == figures["clips_per_s"]  # the best round is reported
    assert figures["pipeline_over_floor"] == pytest.approx(
        rounds["floor_clips_per_s"][0] / rounds["clips_per_s"][0], rel=1e-2
    )  # one round: its ratio


def test_bench_data_without_shards_is_a_user_error(tmp_path, capsys):
    assert main(["bench", "data", str(tmp_path / "nothing")]) == 1
    assert "no manifest.json" in capsys.readouterr().err
