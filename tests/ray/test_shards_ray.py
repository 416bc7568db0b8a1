"""`shards build --ray` against a real local Ray cluster started here on free ports: the same shards
as a local build, and user errors raised inside Ray tasks come back as themselves."""

from __future__ import annotations

import pytest
from local_ray import LocalRayCluster

from pretrain.cli import main
from pretrain.data.generated.corpora import write_corrupt_video, write_ucf101_tree
from pretrain.data.shards import BuildOptions, build_shards, read_manifest, verify_shards
from pretrain.data.shards.errors import StrictModeError
from pretrain.distributed.shard_tasks import ray_shard_runner

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = LocalRayCluster(tmp_path_factory.mktemp("shards_ray"))
    cluster.start_head(num_cpus=2, dashboard=False)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("ucf")
    write_ucf101_tree(root, classes=3)
    write_corrupt_video(root / "UCF-101" / "Archery" / "v_Archery_g05_c01.avi", "zero-byte")
    return root


def test_ray_build_equals_local_build(cluster, corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    local = build_shards("ucf101", str(corpus), str(tmp_path / "local"), BuildOptions(shard_size_mb=0.03))
    on_ray = build_shards(
        "ucf101",
        str(corpus),
        str(tmp_path / "ray"),
        BuildOptions(shard_size_mb=0.03, workers=2),
        runner=ray_shard_runner(cluster.gcs_address, max_in_flight=2),
    )
    assert (
        (on_ray.videos, on_ray.skipped, on_ray.shards)
        == (local.videos, local.skipped, local.shards)
        == (12, 1, 6)
    )
    assert read_manifest(str(tmp_path / "ray")).shards == read_manifest(str(tmp_path / "local")).shards
    assert on_ray.errors == local.errors and on_ray.errors[0]["reason"] == "zero-byte file"
    assert verify_shards(str(tmp_path / "ray")).ok


def test_ray_strict_error_comes_back_as_a_user_error(cluster, corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    with pytest.raises(StrictModeError, match="v_Archery_g05_c01.avi: zero-byte file"):
        build_shards(
            "ucf101",
            str(corpus),
            str(tmp_path / "out"),
            BuildOptions(strict=True),
            runner=ray_shard_runner(cluster.gcs_address),
        )
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_cli_ray_flags_reach_the_cluster(cluster, corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    code = main(
        [
            "shards",
            "build",
            "ucf101",
            str(corpus),
            str(tmp_path / "cli"),
            "--shard-size-mb",
            "0.05",
            "--ray",
            "--address",
            cluster.gcs_address,
        ]
    )
    assert code == 0 and "ucf101: 12 videos" in capsys.readouterr().out
    assert read_manifest(str(tmp_path / "cli")).num_samples == 12
