"""Split selection on real shards gives exactly the videos of the official split files, and
`evaluate` reports every split beside their mean."""

from __future__ import annotations

import json

import pytest
from finetune_runs import InProcessRun, OneThread, finetune_config, motion_shards, short_finetune

from pretrain.cli import main
from pretrain.data.shards import read_manifest
from pretrain.data.shards.keys import key_for_path
from pretrain.data.streams.eval_stream import build_eval_loader
from pretrain.data.streams.selection import members_per_shard, resolve_selection
from pretrain.evaluate.run import evaluate

CLASSES = ("MoveUpSlow", "MoveDownFast")
# Split k tests groups 7(k-1)+1..7k: split 1 tests 2 groups, split 2 one, split 3 three.
GROUPS = (1, 2, 8, 15, 16, 17, 22)
TEST_VIDEOS = {1: 4, 2: 2, 3: 6}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("splits")
    shards = motion_shards(root, CLASSES, GROUPS)
    result = short_finetune(shards, root / "runs", "ft")
    return root, shards, result


def split_file(root, name: str) -> list[str]:
    lines = (root / "raw" / "ucfTrainTestlist" / name).read_text().splitlines()
    return [line.split()[0] for line in lines if line.strip()]


@pytest.mark.parametrize("split", [1, 2, 3])
def test_selection_matches_the_split_files(corpus, split):
    root, shards, _ = corpus
    manifest = read_manifest(str(shards))
    train = split_file(root, f"trainlist0{split}.txt")
    test = split_file(root, f"testlist0{split}.txt")
    assert len(test) == TEST_VIDEOS[split] and len(train) + len(test) == len(CLASSES) * len(GROUPS)
    selected_train = members_per_shard(manifest, resolve_selection("train", manifest, split))
    assert sum(count for _, count in selected_train) == len(train)
    config = finetune_config(shards, root / "runs", "unused", f"finetune.split={split}")
    with OneThread():
        keys = [key for batch in build_eval_loader(config, rank=0, world_size=1) for key in batch["key"]]
    assert sorted(keys) == sorted(key_for_path(path) for path in test)


def test_evaluate_reports_each_split_and_the_mean(corpus, tmp_path):
    root, shards, result = corpus
    config = finetune_config(shards, root / "runs", "eval")
    checkpoint = str(result.last_checkpoint)
    with InProcessRun():
        results = evaluate(config, ",".join([checkpoint] * 3), splits=(1, 2, 3), out_dir=tmp_path)
    assert {s: m.num_videos for s, m in results.per_split.items()} == TEST_VIDEOS
    summary = json.loads((tmp_path / "results.json").read_text())
    top1 = [summary["splits"][str(s)]["top1"] for s in (1, 2, 3)]
    assert summary["mean"]["top1"] == pytest.approx(sum(top1) / 3)
    table = (tmp_path / "results.md").read_text()
    assert "split 1" in table and "mean of 3 split(s)" in table
    for split in (1, 2, 3):
        lines = (tmp_path / f"split{split}" / "predictions.jsonl").read_text().splitlines()
        assert len(lines) == TEST_VIDEOS[split]
        assert (tmp_path / f"split{split}" / "confusion.png").stat().st_size > 0


def test_one_checkpoint_for_three_splits_is_refused(corpus, capsys):
    _, shards, result = corpus
    code = main(
        [
            "evaluate",
            "finetune/tiny",
            f"data.shards={shards}",
            f"ckpt={result.last_checkpoint}",
            "splits=1,2,3",
        ]
    )
    assert code == 2
    assert "one per split" in capsys.readouterr().err
