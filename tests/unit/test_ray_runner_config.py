"""How `cluster.*` becomes Ray Train's ScalingConfig / RunConfig, and what the driver checks before
any worker starts (no cluster needed)."""

from __future__ import annotations

import pytest
from ray.exceptions import RayTaskError
from ray.train.v2.api.exceptions import WorkerGroupError

from pretrain.config import ConfigError, load_config
from pretrain.data.shards.errors import ShardsError
from pretrain.distributed import runner
from pretrain.errors import CheckpointError, DataError


def _config(*overrides: str):
    return load_config("pretrain/tiny", ["cluster.launcher=ray", *overrides])


def test_scaling_config_comes_from_the_cluster_section():
    config = _config(
        "cluster.num_workers=8",
        "cluster.use_gpu=true",
        "cluster.cpus_per_worker=6",
        "cluster.gpus_per_worker=1",
        "cluster.placement_strategy=SPREAD",
    )
    scaling = runner.scaling_config_for(config)
    assert (scaling.num_workers, scaling.use_gpu, scaling.placement_strategy) == (8, True, "SPREAD")
    assert scaling.resources_per_worker == {"CPU": 6, "GPU": 1.0}
    cpu_only = runner.scaling_config_for(_config("cluster.num_workers=2"))
    assert cpu_only.resources_per_worker == {"CPU": 1} and cpu_only.use_gpu is False


def test_run_config_names_storage_failures_and_kept_checkpoints(tmp_path):
    config = _config(f"cluster.storage_path={tmp_path}/ray", "cluster.max_failures=3", "trainer.run_name=r1")
    run = runner.run_config_for(config)
    assert (run.name, run.storage_path) == ("r1", f"{tmp_path}/ray")
    assert run.failure_config.max_failures == 3
    assert run.checkpoint_config.num_to_keep == runner.CHECKPOINTS_KEPT


def test_storage_defaults_under_the_output_dir(tmp_path):
    config = _config(f"trainer.output_dir={tmp_path}")
    assert runner.storage_path_for(config) == str(tmp_path / runner.RAY_RESULTS_DIR)


def test_a_run_name_is_fixed_once_for_every_restart_and_kept_when_given():
    named = runner.with_fixed_run_name(_config())
    assert named.trainer.run_name.startswith("pretrain-")
    assert runner.with_fixed_run_name(_config("trainer.run_name=mine")).trainer.run_name == "mine"


def test_relative_local_paths_are_resolved_on_the_driver_and_urls_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = runner.with_absolute_paths(
        _config("data.shards=shards", "trainer.output_dir=runs", "cluster.storage_path=s3://bucket/tubelet")
    )
    assert config.data.shards == str(tmp_path / "shards")
    assert config.trainer.output_dir == str(tmp_path / "runs")
    assert config.cluster.storage_path == "s3://bucket/tubelet"


def test_missing_shards_fail_on_the_driver_before_any_worker(tmp_path):
    with pytest.raises(ConfigError, match="data.shards is required"):
        runner.run_with_ray(_config())
    with pytest.raises(ShardsError, match="no manifest.json"):
        runner.run_with_ray(_config(f"data.shards={tmp_path}"))


@pytest.mark.parametrize(
    "inner",
    [
        ShardsError("shards/: no manifest.json"),
        CheckpointError("x: not a checkpoint"),
        DataError("none of the 3 shards can be read"),
    ],
)
def test_any_user_error_inside_a_worker_comes_back_as_itself(inner):
    wrapped = RayTaskError("train_fn", "traceback text", inner)
    error = WorkerGroupError("rank 0 failed", {1: RuntimeError("peer died"), 0: wrapped})
    assert runner._user_error_inside(error) is inner


def test_a_config_error_inside_a_worker_comes_back_as_itself():
    inner = ConfigError("strategy.zero_stage=3 needs ...")
    wrapped = RayTaskError("train_fn", "traceback text", inner)
    error = WorkerGroupError("rank 0 failed", {1: RuntimeError("peer died"), 0: wrapped})
    assert runner._user_error_inside(error) is not None
    assert "strategy.zero_stage=3" in str(runner._user_error_inside(error))
    assert runner._user_error_inside(WorkerGroupError("x", {0: RuntimeError("oom")})) is None
