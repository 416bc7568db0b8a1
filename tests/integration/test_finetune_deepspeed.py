"""Fine-tuning under DeepSpeed ZeRO-2 on CPU: the sharded checkpoint is consolidated for the final
multi-view test and for `load_finetuned` (class names from the run's shards), and `resume=auto`
continues the run from it."""

from __future__ import annotations

import pytest
from finetune_runs import motion_shards, short_finetune

from pretrain.evaluate.checkpoint import load_finetuned

CLASSES = ("MoveUpSlow", "MoveDownFast")
ZERO2 = ("strategy.name=deepspeed", "strategy.zero_stage=2")


@pytest.mark.slow
def test_zero2_finetune_evaluates_and_resumes(tmp_path):
    shards = motion_shards(tmp_path, CLASSES, groups=(1, 8, 22))
    first = short_finetune(shards, tmp_path / "runs", "ds", *ZERO2)
    assert (first.last_checkpoint / "state").is_dir()  # a DeepSpeed checkpoint folder
    assert first.metrics["test/num_videos"] == 2
    finetuned = load_finetuned(first.last_checkpoint)
    assert finetuned.class_names == list(CLASSES) and finetuned.model.num_classes == 2

    resumed = short_finetune(shards, tmp_path / "runs", "ds", *ZERO2, "trainer.resume=auto",
                             "trainer.max_steps=5")
    assert resumed.resumed_from == first.last_checkpoint
    assert resumed.global_step == 5
