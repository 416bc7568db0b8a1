"""`tubelet features`: saved features are the classifier's pooled features on the evaluation views
(its head on them gives evaluation's logits); resumable; a linear classifier fitted on saved
features matches `finetune.mode=linear_probe`."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from finetune_runs import OneThread, motion_shards
from safetensors.torch import load_file

from pretrain.cli import main
from pretrain.config import config_to_dict, load_config
from pretrain.data.shards.output_lock import output_lock
from pretrain.data.streams.eval_stream import build_eval_loader
from pretrain.evaluate.features import FeatureJob, extract_features, load_features
from pretrain.evaluate.views import score_batch
from pretrain.models import build_finetune_model
from pretrain.weights import save_export

CLASSES = ("MoveUpSlow", "MoveDownSlow", "MoveUpFast")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    shards = motion_shards(root, CLASSES, groups=(1, 8), shard_size_mb=0.01)  # 6 videos, several shards
    config = load_config("finetune/tiny", [f"data.shards={shards}"], stage="finetune")
    torch.manual_seed(0)
    model = build_finetune_model(config, num_classes=3)
    with torch.no_grad():  # a full-scale head so that logits differ visibly
        model.head.weight.normal_()
    save_export(model, config_to_dict(config), root / "export", class_names=list(CLASSES))
    return root, shards, config, model.eval()


def test_features_are_the_classifiers_pooled_features_on_the_eval_views(classifier, tmp_path, caplog):
    root, shards, config, model = classifier
    with OneThread(), caplog.at_level(logging.INFO, "pretrain.evaluate.features"):
        summary = extract_features(FeatureJob(str(root / "export"), str(shards), str(tmp_path), config))
    # Without a TTY (pytest's stderr): a progress line at each tenth of the 6 samples reached.
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("features: ")]
    assert [line.split(" (")[0] for line in progress] == [f"features: {n}/6 samples" for n in range(1, 7)]
    assert re.fullmatch(r"features: 6/6 samples \(100%\) · elapsed \d+:\d\d:\d\d · ETA 0:00:00", progress[-1])
    with OneThread():
        expected = {}
        for batch in build_eval_loader(config, rank=0, world_size=1, split="all"):
            views = score_batch(model, batch)
            for index, key in enumerate(views.keys):
                expected.setdefault(key, []).append(views.logits[0][index])
    assert (summary.samples, summary.views, summary.dim) == (6, 2, 64)  # tiny recipe: 2 clips x 1 crop
    rows, features = load_features(tmp_path)
    assert sorted(r["key"] for r in rows) == sorted(expected)
    for row, feature in zip(rows, features):
        views = load_file(str(tmp_path / row["file"]))["view_features"][row["row"]]  # (V, D)
        assert torch.allclose(feature, views.mean(0))
        logits = model.head(views)  # the classifier's head on the saved features = evaluation's logits
        assert torch.allclose(logits, torch.stack(expected[row["key"]]), atol=1e-5)
        assert row["class"] == CLASSES[row["label"]] and row["path"].startswith(row["class"] + "/")


def test_two_device_processes_give_the_same_features(classifier, tmp_path):
    root, shards, config, _ = classifier
    with OneThread():
        extract_features(
            FeatureJob(str(root / "export"), str(shards), str(tmp_path / "one"), config), devices=["cpu"]
        )
        two = extract_features(
            FeatureJob(str(root / "export"), str(shards), str(tmp_path / "two"), config),
            devices=["cpu", "cpu"],
        )  # one spawned process per device, shards dealt out
    assert two.units > 1
    (rows_one, one), (rows_two, other) = load_features(tmp_path / "one"), load_features(tmp_path / "two")
    assert [r["key"] for r in rows_one] == [r["key"] for r in rows_two]
    assert torch.allclose(one, other, atol=1e-6)


def _features_command(root: Path, shards: Path, out: Path) -> list[str]:
    return ["features", str(root / "export"), str(shards), "--out", str(out), "--recipe", "finetune/tiny"]


def test_features_command_resumes_without_repeating_a_shard(classifier, tmp_path, capsys):
    root, shards, _, _ = classifier
    command = _features_command(root, shards, tmp_path)
    with OneThread():
        assert main(command) == 0
        first = capsys.readouterr().out
        parts = sorted((tmp_path / "_parts").glob("*.json"))
        before = {p.name: p.stat().st_mtime_ns for p in parts}
        parts[0].unlink()  # as if killed before that shard's part was written
        assert main(command) == 0
    assert f"from {len(parts)} shard(s) (0 resumed)" in first
    assert f"({len(parts) - 1} resumed)" in capsys.readouterr().out
    after = {p.name: p.stat().st_mtime_ns for p in sorted((tmp_path / "_parts").glob("*.json"))}
    assert [name for name in after if after[name] != before.get(name)] == [parts[0].name]  # only it redone
    index = [json.loads(line) for line in (tmp_path / "index.jsonl").read_text().splitlines()]
    assert len(index) == len({r["key"] for r in index}) == 6


def test_a_second_features_run_into_the_same_out_is_refused_naming_the_first(classifier, tmp_path, capsys):
    root, shards, _, _ = classifier
    command = _features_command(root, shards, tmp_path)
    with output_lock(tmp_path):  # the first run, still writing (flock: per open file, even in one process)
        assert main(command) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        f"tubelet: error: {tmp_path} is being written by another run (pid {os.getpid()} on "
    )
    assert err.endswith("wait for it to finish or choose another output folder")
    assert not (tmp_path / "features.json").exists() and not list(tmp_path.glob("features-*"))


def test_damaged_shards_are_each_reported_with_their_lost_samples_and_exit_1(classifier, tmp_path, capsys):
    root, shards, _, _ = classifier
    copy = tmp_path / "shards"
    shutil.copytree(shards, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    counts = {shard["name"]: shard["count"] for shard in manifest["shards"]}
    truncated, corrupt, missing = sorted(counts)[:3]
    with open(copy / truncated, "r+b") as handle:
        handle.truncate(os.path.getsize(copy / truncated) // 2)
    with open(copy / corrupt, "r+b") as handle:
        size = os.path.getsize(copy / corrupt)
        handle.seek(512)
        handle.write(b"\xab" * (size - 1024))
    (copy / missing).unlink()
    out = tmp_path / "out"
    command = _features_command(root, copy, out)
    with OneThread():
        assert main(command) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    lost = counts[truncated] + counts[corrupt] + counts[missing]
    assert err.startswith(
        f"tubelet: error: {lost} sample(s) lost in 3 damaged shard(s) (listed in {out}/features.json): "
    )
    for name in (truncated, corrupt, missing):
        assert f"{name}: {counts[name]} skipped, " in err
    summary = json.loads((out / "features.json").read_text())
    assert summary["skipped_samples"] == lost and summary["samples"] == sum(counts.values()) - lost
    assert sorted(entry["shard"] for entry in summary["damaged_shards"]) == [truncated, corrupt, missing]
    modes = {path.stat().st_mode & 0o777 for path in out.glob("features-*.safetensors")}
    assert modes == {(out / "index.jsonl").stat().st_mode & 0o777}  # not safetensors' 0600


def _tinted_frames(class_index: int, seed: int):
    """Classes told apart by colour, videos by noise and a moving square: random encoder features
    separate them, so probe and feature classifier have something to agree on."""
    import numpy as np

    rng = np.random.default_rng(seed)
    tint = np.array([[200, 60, 60], [60, 200, 60], [60, 60, 200], [200, 200, 60]][class_index])
    frames = (tint + rng.integers(-50, 51, size=(24, 64, 64, 3))).clip(0, 255).astype(np.uint8)
    y, x = rng.integers(0, 48, size=2)
    for t in range(24):
        frames[t, y : y + 16, (x + t) % 48 : (x + t) % 48 + 16] = 255
    return frames


def _fit_linear(train: torch.Tensor, labels: torch.Tensor, classes: int) -> torch.nn.Module:
    """Standardize (BatchNorm without affine, as the probe) + a linear layer, full-batch L-BFGS."""
    torch.manual_seed(0)
    mean, std = train.mean(0), train.std(0) + 1e-6
    linear = torch.nn.Linear(train.shape[1], classes)
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=200)

    def closure():
        optimizer.zero_grad()
        loss = (
            torch.nn.functional.cross_entropy(linear((train - mean) / std), labels)
            + 1e-3 * linear.weight.square().sum()
        )
        loss.backward()
        return loss

    optimizer.step(closure)
    return lambda x: linear((x - mean) / std)


def test_linear_classifier_on_saved_features_matches_the_linear_probe(tmp_path):
    from finetune_runs import short_finetune

    from pretrain.data.generated.corpora import write_ucf101_tree
    from pretrain.data.shards import BuildOptions, build_shards
    from pretrain.models import build_pretraining_model

    names = ["Archery", "Basketball", "Bowling", "Diving"]
    write_ucf101_tree(tmp_path / "raw", classes=names, groups=(1, 2, 8, 9, 10, 22), frames=_tinted_frames)
    shards = tmp_path / "shards"
    build_shards(
        "ucf101", str(tmp_path / "raw"), str(shards), BuildOptions(shard_size_mb=0.05)
    )  # 16 train / 8 test
    torch.manual_seed(3)
    save_export(
        build_pretraining_model(load_config("pretrain/tiny", stage="pretrain").model),
        None,
        tmp_path / "export",
    )
    probe = short_finetune(
        shards,
        tmp_path / "runs",
        "probe",
        "finetune.mode=linear_probe",
        f"finetune.init={tmp_path / 'export'}",
        "trainer.max_steps=60",
        "trainer.checkpoint_every_steps=60",
        "optim.epochs=30",
        "optim.base_lr=2.0",
    )
    config = load_config("finetune/tiny", [f"data.shards={shards}"], stage="finetune")
    with OneThread():
        for split in ("train", "test"):
            extract_features(
                FeatureJob(str(tmp_path / "export"), str(shards), str(tmp_path / split), config, split)
            )
    (train_rows, train), (test_rows, test) = (
        load_features(tmp_path / "train"),
        load_features(tmp_path / "test"),
    )
    classify = _fit_linear(train, torch.tensor([r["label"] for r in train_rows]), len(names))
    predicted = classify(test).argmax(1)
    accuracy = (predicted == torch.tensor([r["label"] for r in test_rows])).float().mean().item()
    # 8 test videos: one video is 0.125 of top-1, the noise this comparison allows.
    assert probe.metrics["test/num_videos"] == len(test_rows) == 8
    assert abs(accuracy - probe.metrics["test/top1"]) <= 0.125 + 1e-6, (accuracy, probe.metrics["test/top1"])
    assert accuracy >= 0.75
