"""A run resumed in its own run directory keeps its metrics history (issue 13 §5): the CSV keeps
every row before the resume step, drops the rows the interrupted run logged after it (the resumed
run logs those steps again) and appends; W&B logs into the same run id, and the earlier offline
run directory stays (so `wandb sync` uploads all of it)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from pretrain_runs import build_folder_shards, read_metrics, series, tiny_config

from pretrain.train.entry import run_stage

QUIET = ("logging.wandb=offline", "logging.recon_every_steps=0", "trainer.checkpoint_every_steps=3")


def _wandb_runs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "wandb").glob("offline-run-*"))


def test_resume_keeps_earlier_rows_and_the_wandb_run(tmp_path):
    shards = build_folder_shards(tmp_path / "corpus")
    first = run_stage(tiny_config(shards, tmp_path, "run", "trainer.max_steps=6", *QUIET))
    before = series(first.run_dir, "train/loss")
    assert sorted(before) == list(range(6))
    shutil.rmtree(first.run_dir / "checkpoints" / "step-00000006")  # as if killed before saving step 6
    run_id = (first.run_dir / "wandb_id.txt").read_text().strip()

    resumed = run_stage(
        tiny_config(shards, tmp_path, "run", "trainer.max_steps=8", "trainer.resume=auto", *QUIET)
    )
    assert resumed.resumed_from.name == "step-00000003" and resumed.global_step == 8
    rows = [int(row["step"]) for row in read_metrics(resumed.run_dir) if row.get("train/loss")]
    assert rows == list(range(8))  # 0-2 kept, the interrupted 3-5 replaced, 3-7 appended: no step twice
    after = series(resumed.run_dir, "train/loss")
    assert all(after[step] == before[step] for step in range(3))  # the earlier rows, untouched
    assert (resumed.run_dir / "wandb_id.txt").read_text().strip() == run_id
    wandb_runs = _wandb_runs(resumed.run_dir)
    # wandb adds "-1" to the second folder when both runs start within the same second
    assert len(wandb_runs) == 2 and all(re.search(rf"-{run_id}(-\d+)?$", path.name) for path in wandb_runs)
    assert all(list(path.glob("*.wandb")) for path in wandb_runs)
