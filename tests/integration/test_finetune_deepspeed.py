"""Fine-tuning under DeepSpeed ZeRO-2 on CPU: the sharded checkpoint is consolidated for the final
multi-view test and for `load_finetuned` (class names from the run's shards), `resume=auto`
continues the run from it, and `finetune.init` takes a ZeRO pretraining checkpoint."""

from __future__ import annotations

import pytest
import torch
from finetune_runs import InProcessRun, classifier_logits, motion_shards, short_finetune

from pretrain.weights import load_finetuned

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

    resumed = short_finetune(
        shards, tmp_path / "runs", "ds", *ZERO2, "trainer.resume=auto", "trainer.max_steps=5"
    )
    assert resumed.resumed_from == first.last_checkpoint
    assert resumed.global_step == 5


@pytest.mark.slow
def test_init_from_a_zero2_pretraining_checkpoint_equals_its_export(tmp_path):
    from pretrain.config import load_config
    from pretrain.train.entry import run_stage
    from pretrain.weights import export_checkpoint

    shards = motion_shards(tmp_path, CLASSES, groups=(1, 8, 22))
    config = load_config(
        "pretrain/tiny",
        [
            f"data.shards={shards}",
            "trainer.max_steps=1",
            "trainer.checkpoint_every_steps=1",
            f"trainer.output_dir={tmp_path}",
            "trainer.run_name=pre",
            "logging.wandb=disabled",
            "logging.recon_every_steps=0",
            *ZERO2,
        ],
        stage="pretrain",
    )
    with InProcessRun():
        checkpoint = run_stage(config).last_checkpoint
        assert (checkpoint / "state").is_dir()  # ZeRO shards
        export_checkpoint(checkpoint, tmp_path / "export")
        reference = classifier_logits(str(tmp_path / "export"))
        torch.testing.assert_close(classifier_logits(str(checkpoint)), reference, rtol=0, atol=1e-5)
