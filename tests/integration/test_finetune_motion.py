"""Motion dataset → real shards → `tubelet finetune tiny` → multi-view test: the model learns
classes that only motion tells apart (≥ 90% top-1), and shuffling the frames of each test clip
destroys most of that (proof that it reads time, not appearance)."""

from __future__ import annotations

import json

import pytest
from finetune_runs import InProcessRun
from PIL import Image

from pretrain.config import load_config
from pretrain.data.generated.motion_dataset import write_motion_dataset
from pretrain.data.shards import BuildOptions, build_shards
from pretrain.evaluate.run import evaluate
from pretrain.train.entry import run_stage

TEST_VIDEOS = 4 * 7  # 4 classes × 7 test groups of split 1


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("motion")
    write_motion_dataset(root / "raw")
    build_shards("ucf101", str(root / "raw"), str(root / "shards"), BuildOptions(shard_size_mb=0.3))
    config = load_config(
        "finetune/tiny",
        [
            f"data.shards={root / 'shards'}",
            f"trainer.output_dir={root / 'runs'}",
            "trainer.run_name=ft",
            "logging.wandb=disabled",
        ],
        stage="finetune",
    )
    with InProcessRun():
        return config, run_stage(config)


def test_tiny_model_learns_motion_classes(finetuned):
    config, result = finetuned
    assert result.metrics["test/num_videos"] == TEST_VIDEOS
    assert result.metrics["test/top1"] >= 0.9, result.metrics
    eval_dir = result.run_dir / "eval"
    summary = json.loads((eval_dir / "results.json").read_text())
    assert summary["splits"]["1"]["top1"] == pytest.approx(result.metrics["test/top1"])
    rows = [json.loads(line) for line in (eval_dir / "split1" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == len({row["key"] for row in rows}) == TEST_VIDEOS
    assert {row["class"] for row in rows} == {"MoveUpSlow", "MoveUpFast", "MoveDownSlow", "MoveDownFast"}
    with Image.open(eval_dir / "split1" / "confusion.png") as image:
        assert image.size[0] > 100


def test_shuffled_frames_do_clearly_worse(finetuned, tmp_path):
    config, result = finetuned
    ordered = result.metrics["test/top1"]
    with InProcessRun():
        shuffled = evaluate(
            config, str(result.last_checkpoint), splits=(1,), out_dir=tmp_path, shuffle_frames=True
        ).per_split[1]
    assert shuffled.num_videos == TEST_VIDEOS
    assert shuffled.top1 <= 0.7 and shuffled.top1 <= ordered - 0.25, (ordered, shuffled)
