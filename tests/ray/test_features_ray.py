"""`tubelet features --ray`: one Ray task per shard on a real local cluster, the same features as local."""

from __future__ import annotations

import pytest
import torch
from local_ray import LocalRayCluster

from pretrain.cli import main
from pretrain.config import config_to_dict, load_config
from pretrain.data.generated.corpora import write_ucf101_tree
from pretrain.data.shards import BuildOptions, build_shards
from pretrain.evaluate.features import load_features
from pretrain.models import build_finetune_model
from pretrain.weights import save_export

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_features_as_ray_tasks_equal_local_features(tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    write_ucf101_tree(tmp_path / "raw", classes=2, groups=(1, 8))
    build_shards("ucf101", str(tmp_path / "raw"), str(tmp_path / "shards"), BuildOptions(shard_size_mb=0.01))
    config = load_config("finetune/tiny", stage="finetune")
    torch.manual_seed(0)
    save_export(build_finetune_model(config, num_classes=2), config_to_dict(config), tmp_path / "export")
    command = ["features", str(tmp_path / "export"), str(tmp_path / "shards"), "--recipe", "finetune/tiny"]
    assert main([*command, "--out", str(tmp_path / "local")]) == 0
    cluster = LocalRayCluster(tmp_path_factory.mktemp("fray"))  # short: AF_UNIX socket paths <= 107 bytes
    cluster.start_head(num_cpus=2, dashboard=False)
    try:
        assert (
            main([*command, "--out", str(tmp_path / "ray_out"), "--ray", "--address", cluster.gcs_address])
            == 0
        )
    finally:
        cluster.stop()
    (local_rows, local), (ray_rows, on_ray) = (
        load_features(tmp_path / "local"),
        load_features(tmp_path / "ray_out"),
    )
    assert [r["key"] for r in local_rows] == [r["key"] for r in ray_rows] and len(local_rows) == 4
    assert torch.allclose(local, on_ray, atol=1e-6)
