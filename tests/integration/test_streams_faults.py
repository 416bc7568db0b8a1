"""Faults and resumption: broken samples and shards are skipped and counted, a corpus where
nothing decodes fails clearly, and a resumed stream continues exactly where it stopped."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest
import torch
from stream_shards import build_ucf_shards, expected_keys, first_key, rewrite_member, stream_config

from pretrain.data.streams.eval_stream import build_eval_loader
from pretrain.data.streams.pipeline_stages import DataError
from pretrain.data.streams.pretrain_stream import build_pretrain_loader


@pytest.fixture(scope="module")
def clean_shards(tmp_path_factory):
    return build_ucf_shards(tmp_path_factory.mktemp("faults"))


@pytest.fixture
def shards(clean_shards, tmp_path):
    copy = tmp_path / "shards"
    shutil.copytree(clean_shards, copy)
    return copy


def shard_files(shards) -> list:
    return sorted(shards.glob("shard-*.tar"))


def test_corrupt_sample_is_skipped_and_counted(shards):
    bad = first_key(shard_files(shards)[1])
    rewrite_member(shard_files(shards)[1], bad, lambda data: b"\0" * len(data))
    loader = build_pretrain_loader(stream_config(shards, "data.split=all", "data.batch_size=2"), 0, 1)
    keys = [k for batch in loader for k in batch["key"]]
    assert len(keys) == 12 and bad not in keys
    assert loader.skipped_samples >= 1 and loader.stats()["data/skipped_samples"] == loader.skipped_samples
    evaluated = build_eval_loader(
        stream_config(shards, "data.eval_split=all", "data.num_workers=2"), 0, 1, multi_view=False
    )
    counts = Counter(k for batch in evaluated for k in batch["key"])
    assert evaluated.skipped_samples == 1  # exactly once, like every other sample
    assert set(counts) == set(expected_keys(shards)) - {bad} and set(counts.values()) == {1}


@pytest.mark.parametrize("damage", ["garbage", "missing"])
def test_unreadable_shard_is_skipped_and_counted(shards, damage):
    lost = shard_files(shards)[0]
    lost_keys = set(expected_keys(shards, lambda meta: meta["shard"] == lost.name))
    if damage == "garbage":
        lost.write_bytes(b"this is not a tar file" * 100)
    else:
        lost.unlink()
    loader = build_pretrain_loader(stream_config(shards, "data.split=all", "data.batch_size=4"), 0, 1)
    keys = [k for batch in loader for k in batch["key"]]
    assert len(keys) == 12 and not set(keys) & lost_keys
    assert loader.skipped_shards >= 1
    evaluated = build_eval_loader(stream_config(shards, "data.eval_split=all"), 0, 1, multi_view=False)
    seen = [k for batch in evaluated for k in batch["key"]]
    assert evaluated.skipped_shards == 1 and len(seen) == len(set(seen)) == 12 - len(lost_keys)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [0, 2])
def test_nothing_decodes_is_a_clear_error(shards, workers):
    for shard in shard_files(shards):
        for key in expected_keys(shards, lambda meta, name=shard.name: meta["shard"] == name):
            rewrite_member(shard, key, lambda data: data[:50])
    loader = build_pretrain_loader(
        stream_config(shards, "data.split=all", f"data.num_workers={workers}"), 0, 1
    )
    with pytest.raises(Exception, match="none of the 12 selected videos decodes"):
        list(loader)


@pytest.mark.timeout(120)
def test_no_readable_shard_is_a_clear_error(shards):
    for shard in shard_files(shards):
        shard.write_bytes(b"nope")
    loader = build_pretrain_loader(stream_config(shards, "data.split=all"), 0, 1)
    with pytest.raises(DataError, match=r"none of the \d+ shards can be read"):
        list(loader)


# ------------------------------------------------------------------ resumption


def run(loader, epochs: int, stop_after: int | None = None, local: bool = False):
    """(batches as comparable tuples, state after `stop_after` batches or None)."""
    seen = []
    for _ in range(epochs):
        for batch in loader:
            seen.append((batch["key"], batch["video"], batch["mask"]))
            if stop_after is not None and len(seen) == stop_after:
                return seen, loader.local_state_dict() if local else loader.state_dict()
    return seen, None


def same_batches(left, right) -> bool:
    return len(left) == len(right) and all(
        a[0] == b[0] and torch.equal(a[1], b[1]) and torch.equal(a[2], b[2]) for a, b in zip(left, right)
    )


@pytest.mark.parametrize("corrupt", [False, True])
def test_resumed_stream_equals_uninterrupted(shards, corrupt):
    if corrupt:  # resumption must also hold when some videos are skipped
        rewrite_member(shard_files(shards)[2], first_key(shard_files(shards)[2]), lambda d: b"\0" * 99)
    config = stream_config(
        shards,
        "data.split=all",
        "data.num_workers=2",
        "data.batch_size=3",
        "data.num_sample=2",
        "data.shuffle_buffer=5",
    )  # clips of a video straddle batches
    for rank in (1,) if corrupt else (0, 1):
        full, _ = run(build_pretrain_loader(config, rank, 2), epochs=2)
        assert len(full) == 8  # 2 epochs x 4 batches per rank
        for stop in (1, 4, 5):  # worker 1 next; the epoch's end; into the next epoch
            head, state = run(
                build_pretrain_loader(config, rank, 2), epochs=2, stop_after=stop, local=stop % 2 == 1
            )
            resumed = build_pretrain_loader(config, rank, 2)
            resumed.load_state_dict(state)
            tail, _ = run(resumed, epochs=2 - state["epoch"])
            assert same_batches(head + tail[: len(full) - stop], full), f"rank {rank}, stopped after {stop}"


def test_changed_world_size_restarts_the_epoch_with_a_warning(shards, caplog):
    config = stream_config(shards, "data.split=all", "data.batch_size=2")
    _, state = run(build_pretrain_loader(config, 0, 1), epochs=1, stop_after=2)
    other = build_pretrain_loader(config, 0, 2)
    other.load_state_dict(state)
    assert other.epoch == 0 and other.batches_in_epoch == 0
    assert "world_size 1 → 2" in caplog.text
