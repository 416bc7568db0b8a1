"""A held-out split for folder corpora (`--test-fraction`), and split checks that come before any
work: a split the manifest lacks, or an evaluation on training videos, is refused at the start
(naming the key) unless asked for, and then the results say so (issue 13 §6, issue 17)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pretrain.cli import main
from pretrain.config import ConfigError, load_config
from pretrain.data.generated.corpora import write_folder_tree
from pretrain.data.shards import BuildOptions, ShardsError, build_shards, read_manifest
from pretrain.data.shards.held_out import with_held_out_split
from pretrain.data.shards.inspection import iter_sample_json
from pretrain.data.shards.listing import Listing
from pretrain.data.streams.selection import check_splits
from pretrain.evaluate.metrics import SplitMetrics
from pretrain.evaluate.reports import write_results

CLASSES = ["jump", "run"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("held_out") / "videos"
    write_folder_tree(root, classes=CLASSES, videos_per_class=5)
    return root


@pytest.fixture(scope="module")
def plain_shards(corpus) -> Path:
    out = corpus.parent / "plain"
    build_shards("folder", str(corpus), str(out), BuildOptions(labels_from_folders=True))
    return out


@pytest.fixture(scope="module")
def held_out_shards(corpus) -> Path:
    out = corpus.parent / "held_out"
    assert (
        main(
            [
                "shards",
                "build",
                "folder",
                str(corpus),
                str(out),
                "--labels-from-folders",
                "--test-fraction",
                "0.2",
            ]
        )
        == 0
    )
    return out


def _ranked_first(corpus: Path, class_name: str) -> str:
    paths = sorted(f"{class_name}/{p.name}" for p in (corpus / class_name).iterdir())
    return min(paths, key=lambda path: hashlib.sha256(path.encode()).hexdigest())


def test_test_fraction_is_recorded_like_an_official_split(corpus, held_out_shards, tmp_path):
    manifest = read_manifest(str(held_out_shards))
    assert manifest.split_ids == ["1"]
    assert (manifest.count("1", "train"), manifest.count("1", "test")) == (8, 2)
    assert manifest.class_counts["1"]["test"] == {"jump": 1, "run": 1}  # stratified by class
    assert manifest.build["held_out"] == {"test_fraction": 0.2, "method": "sha256(path) rank per class"}
    samples = {
        meta["path"]: meta for shard in manifest.shards for _, meta in iter_sample_json(manifest, shard.name)
    }
    test = sorted(path for path, meta in samples.items() if meta["splits"] == {"1": "test"})
    assert test == sorted(_ranked_first(corpus, name) for name in CLASSES)
    assert all(meta["split"] == meta["splits"]["1"] for meta in samples.values())
    again = build_shards(
        "folder",
        str(corpus),
        str(tmp_path / "again"),
        BuildOptions(labels_from_folders=True, test_fraction=0.2),
    )
    assert again.videos == 10 and read_manifest(str(tmp_path / "again")).splits == manifest.splits


def test_test_fraction_is_refused_for_corpora_with_official_splits_and_out_of_range(corpus, tmp_path, capsys):
    assert main(["shards", "build", "folder", str(corpus), str(tmp_path / "o"), "--test-fraction", "1"]) == 1
    assert "test_fraction=1.0 must be in [0, 1)" in capsys.readouterr().err
    official = Listing("ucf101", ["a"], [], split_ids=("1", "2", "3"))
    with pytest.raises(ShardsError, match="ucf101 has official splits"):
        with_held_out_split(official, 0.2)


def test_a_split_the_manifest_lacks_is_refused_before_training(plain_shards, tmp_path, capsys):
    args = [f"data.shards={plain_shards}", f"trainer.output_dir={tmp_path}", "trainer.run_name=ft"]
    assert main(["finetune", "finetune/tiny", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        f"tubelet: config error: data.eval_split='test': {plain_shards} (folder) "
        "has no official splits and no held-out split"
    )
    assert "--test-fraction 0.2" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "ft" / "checkpoints").exists()  # refused before any step
    assert main(["config", "show", "finetune/tiny", f"data.shards={plain_shards}"]) == 2
    assert "data.eval_split='test'" in capsys.readouterr().err
    assert main(["config", "show", "finetune/tiny", f"data.shards={plain_shards}", "data.split=test2"]) == 2
    assert "data.split='test2'" in capsys.readouterr().err


def test_evaluating_on_training_videos_needs_asking_and_is_marked(plain_shards, held_out_shards, tmp_path):
    config = load_config("finetune/tiny", [f"data.shards={plain_shards}", "data.eval_split=all"])
    with pytest.raises(ConfigError, match="holds videos of data.split='train'.*own training videos"):
        check_splits(config, read_manifest(str(plain_shards)), evaluating=True)
    config = load_config("finetune/tiny", [f"data.shards={held_out_shards}", "data.eval_split=train"])
    with pytest.raises(ConfigError, match="data.eval_split='train' \\(split 1 train\\)"):
        check_splits(config, read_manifest(str(held_out_shards)), evaluating=True)
    allowed = load_config(
        "finetune/tiny", [f"data.shards={plain_shards}", "data.eval_split=all", "data.eval_on_train=true"]
    )
    warning = check_splits(allowed, read_manifest(str(plain_shards)), evaluating=True)
    assert warning.startswith("EVALUATED ON TRAINING VIDEOS: data.eval_split='all' (all samples)")
    held_out = load_config("finetune/tiny", [f"data.shards={held_out_shards}"])
    assert check_splits(held_out, read_manifest(str(held_out_shards)), evaluating=True) is None
    md, js = write_results({1: SplitMetrics(1.0, 1.0, 1.0, 10)}, "m", tmp_path, warning)
    assert md.read_text().startswith(f"**WARNING: {warning}**")
    assert json.loads(js.read_text())["warning"] == warning
