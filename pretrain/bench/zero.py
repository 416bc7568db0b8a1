"""`tubelet bench zero`: what ZeRO stage 0–3 keeps on each rank, measured, with 2 ranks on CPU.

For every stage, `world_size` processes (gloo, DeepSpeed's CPU accelerator) train a VideoMAE of
the chosen size for a few steps through the same DeepSpeed config and AdamW groups as the
pretraining stage. Each rank counts the bytes of the tensors it actually holds (deduplicated by
storage, so views into DeepSpeed's flat buffers count once): parameters, gradients right after
backward, optimizer state (Adam moments + ZeRO's fp32 master partitions); and its peak RSS.
From stage 1 on, the optimizer state per rank should fall to about 1/world of stage 0's; from
stage 2 the gradients too; stage 3 partitions the parameters.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pretrain.train.zero3 import dry_run_inputs, register_untracked_parameters

MB = 2**20
MASK_RATIO = 0.9


@dataclass(frozen=True)
class ZeroBenchSettings:
    size: str = "b"
    world_size: int = 2
    stages: tuple[int, ...] = (0, 1, 2, 3)
    img_size: int = 64
    num_frames: int = 8
    batch_size: int = 1
    steps: int = 2


@dataclass
class RankMemory:
    stage: int
    rank: int
    peak_rss_mb: float
    rss_growth_mb: float  # peak RSS minus RSS before the model was built
    params_mb: float
    grads_mb: float
    adam_mb: float  # Adam moments (exp_avg, exp_avg_sq)
    master_mb: float  # ZeRO's fp32 master copy of the rank's parameter partition
    loss: float


class LossOnly(nn.Module):
    """The model as DeepSpeed sees it: a tensor output, so ZeRO-3's backward hooks can attach
    (VideoMAE returns a dataclass), with the parameters ZeRO-3 cannot track registered on it."""

    def __init__(self, model: nn.Module, zero3: bool, mask_ratio: float):
        super().__init__()
        self.model = model
        if zero3:
            inputs = dry_run_inputs(model.spec, mask_ratio, 0.0)
            register_untracked_parameters(self, model, lambda: model(inputs["video"], inputs["mask"]))

    def forward(self, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model(video, mask).loss


def storage_bytes(tensors: Iterable[Any]) -> int:
    """Bytes of the distinct storages behind `tensors` (None and non-tensors ignored)."""
    seen: dict[int, int] = {}
    for tensor in tensors:
        if isinstance(tensor, torch.Tensor) and tensor.numel():
            storage = tensor.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def param_tensors(engine: Any) -> list[torch.Tensor]:
    return [getattr(p, "ds_tensor", p.data) for p in engine.module.parameters()]


def grad_tensors(engine: Any) -> list[Any]:
    optimizer = engine.optimizer
    held = [p.grad for p in engine.module.parameters()]
    for name in ("grads_in_partition", "grad_partitions_flat_buffer"):
        held.append(getattr(optimizer, name, None))
    for grads in getattr(optimizer, "averaged_gradients", {}).values():
        held.extend(grads or [])
    return held


def adam_tensors(engine: Any) -> list[Any]:
    inner = getattr(engine.optimizer, "optimizer", engine.optimizer)
    return [value for state in inner.state.values() for value in state.values()]


def master_tensors(engine: Any) -> list[Any]:
    held: list[Any] = []
    for name in ("single_partition_of_fp32_groups", "fp32_partitioned_groups_flat"):
        held.extend(getattr(engine.optimizer, name, None) or [])
    return held


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MB


def _bench_rank(rank: int, settings: ZeroBenchSettings, stage: int, port: int, out_dir: str) -> None:
    os.environ.update(
        {
            "DS_ACCELERATOR": "cpu",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(settings.world_size),
        }
    )
    import deepspeed

    from pretrain.models import build_pretraining_model
    from pretrain.runtime.placement import resolve_placement
    from pretrain.train.optim import build_adamw, param_groups
    from pretrain.train.strategy import deepspeed_config

    deepspeed.init_distributed("gloo", auto_mpi_discovery=False)
    config = _rank_config(settings, stage)
    baseline = _rss_mb()
    torch.manual_seed(0)
    model = LossOnly(build_pretraining_model(config.model), zero3=stage == 3, mask_ratio=MASK_RATIO)
    optimizer = build_adamw(param_groups(model.named_parameters(), 0.05), 1e-4, (0.9, 0.95))
    ds_config = {**deepspeed_config(config, resolve_placement(config)), "gradient_accumulation_steps": 1}
    engine, *_ = deepspeed.initialize(
        model=model, optimizer=optimizer, config=ds_config, model_parameters=model.parameters()
    )
    grads, loss = _train_steps(engine, settings, config.model.grid, rank)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = RankMemory(
        stage,
        rank,
        peak,
        peak - baseline,
        storage_bytes(param_tensors(engine)) / MB,
        grads,
        storage_bytes(adam_tensors(engine)) / MB,
        storage_bytes(master_tensors(engine)) / MB,
        loss,
    )
    Path(out_dir, f"stage{stage}-rank{rank}.json").write_text(json.dumps(asdict(row)))
    torch.distributed.destroy_process_group()


def _rank_config(settings: ZeroBenchSettings, stage: int):
    from pretrain.config import load_config

    return load_config(
        None,
        [
            f"model.size={settings.size}",
            f"model.img_size={settings.img_size}",
            f"model.num_frames={settings.num_frames}",
            "strategy.name=deepspeed",
            f"strategy.zero_stage={stage}",
            f"data.batch_size={settings.batch_size}",
            "trainer.accelerator=cpu",
            f"trainer.devices={settings.world_size}",
        ],
    )


def _train_steps(
    engine, settings: ZeroBenchSettings, grid: tuple[int, int, int], rank: int
) -> tuple[float, float]:
    """`settings.steps` optimizer steps on random clips: (gradient MB held before the last step, last loss)."""
    from pretrain.masking import batch_masks

    generator = torch.Generator().manual_seed(rank)
    grads = loss = 0.0
    for _ in range(settings.steps):
        video = torch.randn(
            settings.batch_size,
            3,
            settings.num_frames,
            settings.img_size,
            settings.img_size,
            generator=generator,
        )  # (B, C, T, H, W)
        mask, _ = batch_masks(settings.batch_size, grid, MASK_RATIO, generator=generator)
        step_loss = engine(video, mask)
        engine.backward(step_loss)
        grads = storage_bytes(grad_tensors(engine)) / MB  # held between backward and step
        engine.step()
        loss = float(step_loss.detach())
    return grads, loss


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_zero_bench(settings: ZeroBenchSettings) -> list[RankMemory]:
    """One fresh group of `world_size` processes per stage (peak RSS is per process)."""
    import torch.multiprocessing as mp

    rows: list[RankMemory] = []
    with tempfile.TemporaryDirectory(prefix="tubelet-zero-bench-") as out_dir:
        for stage in settings.stages:
            mp.start_processes(
                _bench_rank,
                args=(settings, stage, _free_port(), out_dir),
                nprocs=settings.world_size,
                start_method="spawn",
                join=True,
            )
            for rank in range(settings.world_size):
                rows.append(
                    RankMemory(**json.loads(Path(out_dir, f"stage{stage}-rank{rank}.json").read_text()))
                )
    return rows


def format_table(rows: list[RankMemory], settings: ZeroBenchSettings) -> str:
    """One line per (stage, rank), with Adam state and gradients relative to stage 0 on that rank."""
    stage0 = {r.rank: r for r in rows if r.stage == 0}
    header = (
        f"ZeRO memory per rank: VideoMAE-{settings.size.upper()}, {settings.world_size} ranks (CPU, gloo), "
        f"{settings.num_frames}x{settings.img_size}px, batch {settings.batch_size}/rank, fp32\n"
        f"{'stage':>5} {'rank':>4} {'peak RSS MB':>11} {'RSS growth MB':>13} {'params MB':>9} "
        f"{'grads MB':>8} {'adam MB':>8} {'master MB':>9} {'adam/stage0':>11} {'grads/stage0':>12}"
    )
    lines = [header]
    for r in rows:
        base = stage0.get(r.rank)
        adam_ratio = f"{r.adam_mb / base.adam_mb:.3f}" if base and base.adam_mb else "-"
        grad_ratio = f"{r.grads_mb / base.grads_mb:.3f}" if base and base.grads_mb else "-"
        lines.append(
            f"{r.stage:>5} {r.rank:>4} {r.peak_rss_mb:>11.0f} {r.rss_growth_mb:>13.0f} {r.params_mb:>9.1f} "
            f"{r.grads_mb:>8.1f} {r.adam_mb:>8.1f} {r.master_mb:>9.1f} {adam_ratio:>11} {grad_ratio:>12}"
        )
    lines.append(
        "adam = Adam moments held by the rank; master = ZeRO's fp32 copy of the rank's parameter "
        "partition (stage 0 updates the parameters in place and has none)"
    )
    return "\n".join(lines)
