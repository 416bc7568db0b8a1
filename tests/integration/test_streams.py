"""Pretraining and fine-tuning streams over real shards built from encoded videos."""

from __future__ import annotations

import pytest
import torch
from stream_shards import build_ucf_shards, class_of_key, expected_keys, stream_config

from pretrain.config import ConfigError
from pretrain.data.augment.transforms import IMAGENET_MEAN, IMAGENET_STD, normalize_video, yuv420_to_rgb
from pretrain.data.generated.corpora import square_frames, write_folder_tree
from pretrain.data.shards import build_shards, read_manifest
from pretrain.data.streams.finetune_stream import build_finetune_loaders, build_finetune_train_loader
from pretrain.data.streams.pretrain_stream import build_pretrain_loader
from pretrain.masking import num_hidden_tokens
from pretrain.train.module import model_video
from pretrain.train.stage import batches_per_rank_per_epoch


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return build_ucf_shards(tmp_path_factory.mktemp("streams"))


def epoch(loader) -> list[dict]:
    return list(loader)


@pytest.mark.parametrize(
    "stage, overrides, world_size, expected",
    [
        ("pretrain", ["data.split=all", "data.num_sample=2", "data.batch_size=4"], 2, 3),  # 12 x 2 / (2 x 4)
        ("pretrain", ["data.split=all", "data.epoch_size=50", "data.batch_size=4"], 3, 5),  # ceil(50 / 12)
        (
            "finetune",
            ["data.num_sample=1", "data.batch_size=2"],
            2,
            3,
        ),  # split 1 train: 9 videos, ceil(9 / 4)
    ],
)
def test_the_schedule_and_the_stream_count_the_same_epoch(shards, stage, overrides, world_size, expected):
    config = stream_config(shards, *overrides, stage=stage)
    build = build_pretrain_loader if stage == "pretrain" else build_finetune_train_loader
    stream = build(config, 0, world_size).stream
    assert batches_per_rank_per_epoch(config, world_size) == stream.batches_per_rank == expected


def test_pretrain_batches_follow_the_contract(shards):
    config = stream_config(
        shards,
        "data.split=all",
        "data.batch_size=4",
        "mask.decoder_ratio=0.5",
        "data.shuffle_buffer=1",  # no buffer: the epoch is exactly the first pass
        "data.normalize_on_device=false",
    )  # normalized float batches from the loader
    loader = build_pretrain_loader(config, rank=0, world_size=1)
    batches = epoch(loader)
    assert len(batches) == len(loader) == 3  # 12 videos x 1 clip / 4
    grid = config.model.grid  # (4, 4, 4) for 8 frames, 64 px, patch 16
    manifest = read_manifest(str(shards))
    for batch in batches:
        assert batch["video"].shape == (4, 3, 8, 64, 64) and batch["video"].dtype == torch.float32
        low = min((0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))
        high = max((1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))
        assert low - 1e-4 <= batch["video"].min() and batch["video"].max() <= high + 1e-4
        assert batch["mask"].dtype == torch.bool and batch["mask"].shape == (4, 64)
        assert batch["mask"].sum(1).tolist() == [num_hidden_tokens(grid, 0.75)] * 4  # 48
        assert batch["decoder_mask"].sum(1).tolist() == [32] * 4  # 2 of 4 per running cell
        labels = [manifest.classes.index(class_of_key(k)) for k in batch["key"]]
        assert batch["label"].dtype == torch.long and batch["label"].tolist() == labels
    keys = [k for b in batches for k in b["key"]]
    assert sorted(keys) == sorted(expected_keys(shards))  # one pass: each video once


def test_split_selection_and_repeated_sampling(shards):
    config = stream_config(
        shards, "data.split=train", "data.num_sample=3", "data.batch_size=3", "data.shuffle_buffer=1"
    )
    batches = epoch(build_pretrain_loader(config, 0, 1))
    train = expected_keys(shards, lambda meta: meta["splits"]["1"] == "train")
    assert len(batches) == 9  # 9 train videos x 3 clips / 3
    for batch in batches:
        assert len(set(batch["key"])) == 1 and batch["key"][0] in train  # 3 clips of one video
        videos = batch["video"]
        assert not torch.equal(videos[0], videos[1]) or not torch.equal(batch["mask"][0], batch["mask"][1])
    assert {b["key"][0] for b in batches} == set(train)


def test_normalize_on_device_ships_the_same_pixels_as_uint8(shards):
    float_config = stream_config(shards, "data.split=all", "data.normalize_on_device=false")
    float_batch = next(iter(build_pretrain_loader(float_config, 0, 1)))
    rgb_config = stream_config(shards, "data.split=all", "data.ship_yuv420=false")
    uint8_batch = next(iter(build_pretrain_loader(rgb_config, 0, 1)))
    assert uint8_batch["video"].dtype == torch.uint8 and uint8_batch["key"] == float_batch["key"]
    assert uint8_batch["video"].shape == float_batch["video"].shape == (4, 3, 8, 64, 64)
    assert torch.allclose(normalize_video(uint8_batch["video"]), float_batch["video"], atol=1e-5)
    assert torch.equal(uint8_batch["mask"], float_batch["mask"])
    assert torch.equal(model_video(uint8_batch), normalize_video(uint8_batch["video"]))


def test_yuv420_batches_convert_on_the_device_to_the_rgb_pixels(shards):
    """The default pretraining batch ships YUV 4:2:0 frames (half of RGB's bytes); converted on
    the device they are the RGB batch the loader would have made, to rounding."""
    yuv_batch = next(iter(build_pretrain_loader(stream_config(shards, "data.split=all"), 0, 1)))
    rgb_config = stream_config(shards, "data.split=all", "data.ship_yuv420=false")
    rgb_batch = next(iter(build_pretrain_loader(rgb_config, 0, 1)))
    assert yuv_batch["video"].dtype == torch.uint8 and yuv_batch["video"].shape == (
        4,
        8,
        96,
        64,
    )  # H*3/2 rows
    assert yuv_batch["key"] == rgb_batch["key"] and torch.equal(yuv_batch["mask"], rgb_batch["mask"])
    rgb = yuv420_to_rgb(yuv_batch["video"])  # (B, 3, T, H, W) float 0..255
    difference = (rgb - rgb_batch["video"].float()).abs()
    assert rgb.shape == (4, 3, 8, 64, 64) and difference.mean() < 0.1
    assert (difference <= 1).float().mean() > 0.999
    assert model_video(yuv_batch).shape == (4, 3, 8, 64, 64)
    assert torch.allclose(model_video(yuv_batch), model_video(rgb_batch), atol=20 / 57)


def test_epochs_reshuffle_and_ranks_split_the_shards(shards):
    config = stream_config(shards, "data.split=all", "data.batch_size=2", "data.shuffle_buffer=4")
    loader = build_pretrain_loader(config, 0, 1)
    first, second = [b["key"] for b in loader], [b["key"] for b in loader]
    assert loader.epoch == 2 and first != second
    config = stream_config(shards, "data.split=all", "data.batch_size=2", "data.shuffle_buffer=1")
    per_rank = [[k for b in build_pretrain_loader(config, rank, 2) for k in b["key"]] for rank in (0, 1)]
    assert len(per_rank[0]) == len(per_rank[1]) == 6  # equal steps on every rank
    by_shard = {}
    for key, meta in expected_keys(shards).items():
        by_shard.setdefault(meta["shard"], set()).add(key)
    firsts = [set(keys[:4]) for keys in per_rank]  # each rank starts on a different whole shard
    assert all(first in by_shard.values() for first in firsts) and not firsts[0] & firsts[1]


def test_workers_feed_the_same_contract(shards):
    config = stream_config(shards, "data.split=all", "data.num_workers=2", "data.batch_size=2")
    loader = build_pretrain_loader(config, 0, 1)
    batches = epoch(loader)
    assert len(batches) == len(loader) == 6
    keys = [k for b in batches for k in b["key"]]
    assert len(keys) == 12 and set(keys) <= set(expected_keys(shards))


def test_finetune_train_stream_mixes_and_smooths(shards):
    config = stream_config(shards, "data.batch_size=4", stage="finetune")
    train, validation = build_finetune_loaders(config, 0, 1)
    batch = next(iter(train))
    assert batch["video"].shape == (4, 3, 8, 64, 64) and batch["video"].dtype == torch.float32
    assert batch["target"].shape == (4, 3) and torch.allclose(batch["target"].sum(1), torch.ones(4))
    assert batch["target"].max() < 1.0 - 0.1 + 0.1 / 3 + 1e-6  # smoothed (and mixed) targets
    assert "mask" not in batch and batch["label"].tolist() == [
        ["ApplyEyeMakeup", "ApplyLipstick", "Archery"].index(class_of_key(k)) for k in batch["key"]
    ]
    test_keys = [k for b in validation for k in b["key"]]
    assert sorted(test_keys) == sorted(expected_keys(shards, lambda m: m["splits"]["1"] == "test"))


def test_unlabeled_folder_corpus(tmp_path):
    write_folder_tree(tmp_path / "raw", classes=None, videos_per_class=3, frames=square_frames(20))
    build_shards("folder", str(tmp_path / "raw"), str(tmp_path / "shards"))
    batches = epoch(build_pretrain_loader(stream_config(tmp_path / "shards", "data.batch_size=3"), 0, 1))
    assert [b["label"].tolist() for b in batches] == [[-1, -1, -1]]  # split=train means all here
    with pytest.raises(ConfigError, match="no labels"):
        build_finetune_loaders(stream_config(tmp_path / "shards", stage="finetune"), 0, 1)
    with pytest.raises(ConfigError, match="no official splits"):
        build_pretrain_loader(stream_config(tmp_path / "shards", "data.split=test"), 0, 1)
