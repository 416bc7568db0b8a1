"""Ray Train on a real two-node Ray cluster on this machine (1 CPU per node): a tiny pretraining
with DeepSpeed ZeRO-2 on CPU, two workers spread over both nodes, run to completion; then the same
run with one training worker SIGKILLed mid-run, which must restore from the last reported
checkpoint and finish on the same loss trajectory as the uninterrupted run; and a new driver of
the finished run (same name and storage) resumes from its last checkpoint."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from local_ray import LocalRayCluster

from pretrain.config import RunConfig, load_config
from pretrain.data.generated.corpora import square_frames, write_ucf101_tree
from pretrain.data.shards import BuildOptions, build_shards

pytestmark = [pytest.mark.ray, pytest.mark.slow]

MAX_STEPS = 8
EVERY = 2


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_MODE", "disabled")  # the driver side, as the cluster runs without
        cluster = LocalRayCluster(tmp_path_factory.mktemp("train"))
        cluster.start_head(num_cpus=1, dashboard=False)
        cluster.add_node(num_cpus=1)
        yield cluster
        import ray

        ray.shutdown()
        cluster.stop()


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """12 real encoded AVIs (UCF101 layout) in several WebDataset shards."""
    root = tmp_path_factory.mktemp("ucf")
    write_ucf101_tree(root / "raw", classes=3, frames=square_frames(20, num_classes=3))
    build_shards("ucf101", str(root / "raw"), str(root / "shards"), BuildOptions(shard_size_mb=0.05))
    return root / "shards"


def _config(cluster: LocalRayCluster, shards: Path, out: Path, run_name: str) -> RunConfig:
    return load_config(
        "pretrain/tiny",
        [
            f"data.shards={shards}",
            "data.batch_size=2",
            "strategy.name=deepspeed",
            "strategy.zero_stage=2",
            "cluster.launcher=ray",
            f"cluster.address={cluster.gcs_address}",
            "cluster.num_workers=2",
            "cluster.cpus_per_worker=1",
            "cluster.placement_strategy=STRICT_SPREAD",
            "cluster.max_failures=1",
            f"cluster.storage_path={out / 'ray_results'}",
            f"trainer.output_dir={out / 'runs'}",
            f"trainer.run_name={run_name}",
            f"trainer.max_steps={MAX_STEPS}",
            f"trainer.checkpoint_every_steps={EVERY}",
            "logging.wandb=disabled",
            "logging.recon_every_steps=0",
            "logging.every_steps=1",
        ],
    )


@pytest.fixture(scope="module")
def plain_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("plain")


@pytest.fixture(scope="module")
def uninterrupted(two_nodes, shards, plain_dir):
    from pretrain.distributed.runner import run_with_ray

    return run_with_ray(_config(two_nodes, shards, plain_dir, "zero2"))


def _losses(result) -> dict[int, float]:
    return {int(m["step"]): m["train/loss"] for m in result.reports}


def test_zero2_over_two_nodes_runs_to_completion(uninterrupted):
    result = uninterrupted
    assert result.global_step == MAX_STEPS
    assert result.metrics["start_step"] == 0
    assert sorted(_losses(result)) == [4, 6, 8]  # every 2 steps, not only at epoch end (3 kept)
    meta = json.loads((Path(result.checkpoint_path) / "meta.json").read_text())
    assert (meta["step"], meta["world_size"], meta["zero_stage"], meta["deepspeed"]) == (
        MAX_STEPS,
        2,
        2,
        True,
    )
    # ZeRO-2 optimizer shards of both ranks are in the checkpoint Ray Train keeps.
    shards = sorted(p.name for p in Path(result.checkpoint_path).rglob("*optim_states.pt"))
    assert len(shards) == 2 and any("rank_0" in s for s in shards) and any("rank_1" in s for s in shards)


def test_sigkilled_worker_is_restored_from_the_last_checkpoint(two_nodes, shards, uninterrupted, tmp_path):
    from pretrain.distributed.runner import run_with_ray

    config = _config(two_nodes, shards, tmp_path, "zero2-killed")
    # Kill as soon as Ray Train has registered the first checkpoint (its snapshot in storage names
    # it): training is then between two reports, and the restart must resume from a checkpoint.
    snapshot = tmp_path / "ray_results" / "zero2-killed" / "checkpoint_manager_snapshot.json"
    killer = _Killer(two_nodes, lambda: snapshot.exists() and "checkpoint-step-" in snapshot.read_text())
    killer.start()
    result = run_with_ray(config)
    killer.join(timeout=5)

    assert killer.killed_pid is not None, "no training worker was killed"
    assert result.global_step == MAX_STEPS
    # The last worker group started from a checkpoint, not from step 0 ...
    assert result.metrics["start_step"] in (2, 4, 6)
    # ... and continued the uninterrupted run's loss trajectory (same weights, optimizer state,
    # step and data position after the restore).
    expected, resumed = _losses(uninterrupted), _losses(result)
    assert resumed[MAX_STEPS] == pytest.approx(expected[MAX_STEPS], rel=1e-4)


def test_a_restarted_driver_with_the_same_run_name_resumes(two_nodes, shards, plain_dir, uninterrupted):
    """A new driver (here: a new fit) of the finished run, asked for 2 more steps, starts from the
    run's last checkpoint that Ray Train keeps in storage."""
    from dataclasses import replace

    from pretrain.distributed.runner import run_with_ray

    config = _config(two_nodes, shards, plain_dir, "zero2")
    longer = replace(config, trainer=replace(config.trainer, max_steps=MAX_STEPS + EVERY))
    result = run_with_ray(longer)
    assert result.metrics["start_step"] == MAX_STEPS
    assert result.global_step == MAX_STEPS + EVERY


class _Killer(threading.Thread):
    """SIGKILLs one Ray Train worker of our cluster once `ready()` is true."""

    def __init__(self, cluster: LocalRayCluster, ready: Callable[[], bool], timeout_s: float = 600):
        super().__init__(daemon=True)
        self.cluster, self.ready, self.timeout_s = cluster, ready, timeout_s
        self.killed_pid = None

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not self.ready():
            if time.monotonic() > deadline:
                return
            time.sleep(0.2)
        workers = [p for p in self.cluster.processes() if "RayTrainWorker" in " ".join(_cmdline(p))]
        if workers:
            os.kill(workers[-1].pid, signal.SIGKILL)
            self.killed_pid = workers[-1].pid


def _cmdline(process) -> list[str]:
    try:
        return process.cmdline()
    except Exception:  # the process may have exited meanwhile
        return []
