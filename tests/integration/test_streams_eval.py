"""Evaluation stream: every sample exactly once over ranks x workers; multi-view from one decode."""

from __future__ import annotations

import json
import tarfile
from collections import Counter

import pytest
import torch
from stream_shards import build_ucf_shards, expected_keys, stream_config

from pretrain.data.augment import sampling, transforms
from pretrain.data.augment.clips import ClipSettings, eval_views
from pretrain.data.streams.eval_stream import build_eval_loader
from pretrain.data.video import crop
from pretrain.data.video.decode import decode_frames, decode_window


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return build_ucf_shards(tmp_path_factory.mktemp("eval"), frames=40)


def keys_over_ranks(shards, split: str, world_size: int, workers: int) -> list[list[str]]:
    config = stream_config(
        shards, f"data.eval_split={split}", f"data.num_workers={workers}", "data.batch_size=2"
    )
    per_rank = []
    for rank in range(world_size):
        loader = build_eval_loader(config, rank, world_size, multi_view=False)
        keys = [k for batch in loader for k in batch["key"]]
        assert len(keys) == loader.stream.rank_samples
        per_rank.append(keys)
    return per_rank


@pytest.mark.parametrize(
    "split, subset, sizes",
    [
        ("train", "train", [4, 5]),  # 9 split-1 train videos over 2 ranks x 2 workers: 2, 2 | 2, 3
        ("test", "test", [1, 2]),  # 3 test videos: 0, 1 | 1, 1 (a worker with nothing to do)
    ],
)
def test_every_sample_exactly_once_over_2_ranks_x_2_workers(shards, split, subset, sizes):
    per_rank = keys_over_ranks(shards, split, world_size=2, workers=2)
    assert [len(keys) for keys in per_rank] == sizes
    counts = Counter(k for keys in per_rank for k in keys)
    expected = expected_keys(shards, lambda meta: meta["splits"]["1"] == subset)
    assert set(counts) == set(expected) and set(counts.values()) == {1}


def test_single_view_batches(shards):
    config = stream_config(shards, "data.eval_split=test", "data.batch_size=2")
    batches = list(build_eval_loader(config, 0, 1, multi_view=False))
    assert [b["video"].shape for b in batches] == [(2, 3, 8, 64, 64), (1, 3, 8, 64, 64)]
    assert all(b["label"].dtype == torch.long for b in batches)


def test_multi_view_is_deterministic_and_shaped(shards):
    config = stream_config(shards, "data.eval_split=test", "data.batch_size=3")
    first = next(iter(build_eval_loader(config, 0, 1, multi_view=True)))
    again = next(iter(build_eval_loader(config, 0, 1, multi_view=True)))
    assert first["video"].shape == (3, 15, 3, 8, 64, 64)  # 5 clips x 3 crops
    assert torch.equal(first["video"], again["video"]) and first["key"] == again["key"]
    views = first["video"][0]
    assert not torch.equal(views[0], views[3])  # different temporal clips
    assert not torch.equal(views[0], views[1])  # different spatial crops


def test_multi_view_equals_decoding_each_view(shards):
    """Decode-once views are the same pixels as decoding every view on its own."""
    shard = sorted(shards.glob("shard-*.tar"))[0]
    with tarfile.open(shard) as tar:
        names = tar.getnames()
        key = names[0].split(".")[0]
        video = tar.extractfile(next(n for n in names if n.startswith(key) and n.endswith(".avi"))).read()
        meta_bytes = tar.extractfile(key + ".json").read()
    sample = {"key": key, "url": str(shard), "meta": json.loads(meta_bytes), "video": video}
    settings = ClipSettings(num_frames=8, stride=2, size=64)
    together = eval_views(sample, settings, num_clips=3, num_crops=2)[0]["video"]  # (6, C, T, H, W)
    windows = sampling.uniform_clips(40, 8, 2, 3)
    for clip_index, window in enumerate(windows):
        frames = decode_window(video, window)
        for crop_index, box in enumerate(transforms.spatial_view_boxes(64, 80, 64, 2)):
            alone = frames.render(box, (64, 64)).permute(3, 0, 1, 2)  # uint8 (C, T, H, W)
            assert torch.equal(together[clip_index * 2 + crop_index], alone)
        # The YUV renderer agrees with swscale's RGB conversion up to rounding (both BT.601),
        # apart from a few pixels at sharp colour edges where chroma is interpolated differently.
        swscale = crop.frames_to_tensor(decode_frames(video, window)).permute(1, 0, 2, 3)  # (C, T, H, W)
        difference = (together[clip_index * 2].int() - swscale[..., :64].int()).abs()  # crop 0: left edge
        assert difference.float().mean() < 1.5
        assert (difference <= 3).float().mean() > 0.99
