"""`tubelet evaluate` on 2 processes (Lightning re-runs the command per rank) × 2 loader workers
with 9 test videos: every video is scored exactly once and the results equal a 1-process run."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from finetune_runs import InProcessRun, finetune_config, motion_shards, short_finetune
from pretrain_runs import tubelet_command

from pretrain.data.shards.keys import key_for_path
from pretrain.evaluate.run import evaluate

CLASSES = ("MoveUpSlow", "MoveUpFast", "MoveDownSlow")
GROUPS = (1, 2, 3, 8, 22)  # split 1 tests groups 1-3: 9 videos, uneven over 2 ranks × 2 workers


# Set in this process by earlier in-process runs (Lightning, DeepSpeed); a child that inherits
# LOCAL_RANK believes it was launched as a rank and never starts the others.
LAUNCH_VARIABLES = (
    "LOCAL_RANK",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "NODE_RANK",
    "GROUP_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TUBELET_RUN_NAME",
)


def run_fresh_cli(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARIABLES}
    env.update(WANDB_MODE="disabled", DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1")
    return subprocess.run(tubelet_command(*args), capture_output=True, text=True, timeout=timeout, env=env)


def read_predictions(path) -> dict[str, dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    by_key = {row["key"]: row for row in rows}
    assert len(by_key) == len(rows), "a video was counted twice"
    return by_key


@pytest.mark.slow
def test_two_ranks_score_every_video_exactly_once(tmp_path):
    shards = motion_shards(tmp_path, CLASSES, GROUPS, shard_size_mb=0.03)
    result = short_finetune(shards, tmp_path / "runs", "ft")
    test_list = (tmp_path / "raw" / "ucfTrainTestlist" / "testlist01.txt").read_text().split()
    expected = {key_for_path(path) for path in test_list}
    assert len(expected) == 9

    common = [
        "finetune/tiny",
        f"data.shards={shards}",
        f"ckpt={result.last_checkpoint}",
        "data.num_workers=2",
    ]
    done = run_fresh_cli("evaluate", *common, "trainer.devices=2", "--out", str(tmp_path / "two"), "-v")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MEMBER: 2/2" in done.stdout + done.stderr  # really two processes (Lightning says so under -v)
    two = read_predictions(tmp_path / "two" / "split1" / "predictions.jsonl")
    assert set(two) == expected
    assert json.loads((tmp_path / "two" / "results.json").read_text())["splits"]["1"]["num_videos"] == 9

    with InProcessRun():
        evaluate(
            finetune_config(shards, tmp_path / "runs", "one", "data.num_workers=2"),
            str(result.last_checkpoint),
            splits=(1,),
            out_dir=tmp_path / "one",
        )
    one = read_predictions(tmp_path / "one" / "split1" / "predictions.jsonl")
    for key, row in one.items():
        assert [c["index"] for c in row["topk"]] == [c["index"] for c in two[key]["topk"]]
        for mine, theirs in zip(row["topk"], two[key]["topk"]):
            assert mine["prob"] == pytest.approx(theirs["prob"], abs=1e-5)
