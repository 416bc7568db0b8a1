"""The one place that turns `strategy.*` + `trainer.*` into Lightning accelerator/strategy/precision.

`auto` → Lightning's choice (single device, or DDP when several); `ddp`; `deepspeed` with ZeRO
stage 0–3 and optimizer/parameter offload to cpu or nvme. Lightning's DeepSpeed strategy refuses
any accelerator but CUDA; DeepSpeed itself runs on CPU (DS_ACCELERATOR=cpu, gloo), so
`CPUCapableDeepSpeedStrategy` lifts that check and ZeRO 1/2/3 runs in CI with 2 processes.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.utilities.seed import reset_seed
from pytorch_lightning.accelerators.cuda import CUDAAccelerator
from pytorch_lightning.plugins.precision.deepspeed import DeepSpeedPrecision
from pytorch_lightning.strategies import DDPStrategy, DeepSpeedStrategy, Strategy

from pretrain.config import ConfigError, RunConfig
from pretrain.runtime.placement import Placement
from pretrain.train.nan_guard import GuardedModule
from pretrain.train.safe_resume import use_safe_checkpoint_engine

log = logging.getLogger(__name__)

# Long enough for a slow first checkpoint of a large model on a shared filesystem.
PROCESS_GROUP_TIMEOUT = timedelta(minutes=30)


def validate_world_size(config: RunConfig, placement: Placement, visible_gpus: int | None = None) -> None:
    """Fail before any work when the requested processes cannot be placed here."""
    if config.cluster.launcher == "ray":
        return  # Ray places the workers; the runner validates against the cluster.
    if placement.accelerator == "gpu":
        visible = torch.cuda.device_count() if visible_gpus is None else visible_gpus
        if placement.devices > visible:
            raise ConfigError(
                f"trainer.devices={placement.devices} GPU processes per node, but only {visible} GPU(s) "
                f"are visible; world size = trainer.devices × trainer.num_nodes = "
                f"{placement.devices} × {placement.num_nodes} = {config.world_size}"
            )
    if config.strategy.name == "deepspeed" and config.strategy.zero_stage == 0 and config.world_size > 1:
        log.info("strategy.name=deepspeed with zero_stage=0 runs plain data parallelism through DeepSpeed")


class CPUCapableDeepSpeedStrategy(DeepSpeedStrategy):
    """Lightning's DeepSpeed strategy without its CUDA-only guard, so ZeRO runs on CPU with gloo."""

    strategy_name = "deepspeed_cpu_capable"

    def setup_environment(self) -> None:
        if isinstance(self.accelerator, CUDAAccelerator):
            super().setup_environment()
            return
        # Skip DeepSpeedStrategy's CUDA check; DDPStrategy's setup still initializes the process
        # group through DeepSpeedStrategy.setup_distributed (deepspeed.init_distributed on gloo).
        DDPStrategy.setup_environment(self)

    def setup_distributed(self) -> None:
        if isinstance(self.accelerator, CUDAAccelerator):
            super().setup_distributed()
            return
        # CPU devices carry no index, so the GPU-index check of the parent does not apply.
        reset_seed()
        self.set_world_ranks()
        prepare_shared_memory_op(self.world_size)
        self._init_deepspeed_distributed()

    def load_checkpoint(self, checkpoint_path: Any, weights_only: bool | None = None) -> dict[str, Any]:
        """Resume through a checkpoint engine that loads with weights_only=True (nothing runs code)."""
        use_safe_checkpoint_engine(self.deepspeed_engine)
        return super().load_checkpoint(checkpoint_path, weights_only)

    def teardown(self) -> None:
        super().teardown()
        restore_functional_linear()

    def _setup_model_and_optimizer(self, model: Any, optimizer: Any, lr_scheduler: Any = None) -> tuple:
        if isinstance(self.accelerator, CUDAAccelerator):
            return super()._setup_model_and_optimizer(model, optimizer, lr_scheduler)
        import deepspeed

        # The parent passes the CUDA device index, which CPU devices lack; DeepSpeed's CPU
        # accelerator wants the local rank instead.
        engine, ds_optimizer, _, _ = deepspeed.initialize(
            args=argparse.Namespace(device_rank=self.local_rank),
            config=self.config,
            model=model,
            model_parameters=filter(lambda p: p.requires_grad, model.parameters()),
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            dist_init_required=False,
        )
        return engine, ds_optimizer


def restore_functional_linear() -> None:
    """ZeRO-3 swaps `torch.nn.functional.linear` for its memory-efficient autograd function process-wide
    and leaves it swapped ("this will persist unless manually reset"); a later stage or export in the
    same process (quickstart, smoke, tests) would then trace DeepSpeed's function. Put torch's back."""
    from deepspeed.runtime.zero.partition_parameters import InsertPostInitMethodToModuleSubClasses

    original = getattr(InsertPostInitMethodToModuleSubClasses, "linear_bk", None)
    if original is not None:
        torch.nn.functional.linear = original


SHM_OP = "deepspeed_shm_comm"


def prepare_shared_memory_op(world_size: int) -> None:
    """DeepSpeed's CPU backend compiles its shared-memory all-reduce (C++ with -fopenmp, a compiler
    needed) on first use, for 1-2 minutes, then loads it from ~/.cache/torch_extensions. One
    process has no peer to share memory with, so it is skipped there (DeepSpeed keeps it off when
    `__compatible_ops__` says so); several processes use it and are told when it is being built."""
    import deepspeed.ops
    from torch.utils.cpp_extension import _get_build_directory

    if world_size == 1:
        deepspeed.ops.__compatible_ops__[SHM_OP] = False
        return
    built = Path(_get_build_directory(SHM_OP, verbose=False)) / f"{SHM_OP}.so"
    if not built.exists():
        log.info(
            "DeepSpeed is compiling its shared-memory all-reduce for CPU ranks (%s): 1-2 minutes, once", built
        )


class SkippableDeepSpeedPrecision(DeepSpeedPrecision):
    """DeepSpeed precision that lets the NaN guard skip a micro-batch.

    When the module's NaN guard is skipping the micro-batch (on every rank together), its loss was a
    detached leaf, so backward produced no gradient; `engine.step()` is not called either, leaving
    weights, optimizer state and DeepSpeed's buffers as they were. Lightning's plugin cannot skip.
    """

    def optimizer_step(
        self, optimizer: Any, model: GuardedModule, closure: Callable[[], Any], **kwargs: Any
    ) -> Any:
        closure_result = closure()
        self._after_closure(model, optimizer)
        if model.automatic_optimization and (closure_result is None or model.guard.skipping):
            return None
        return model.trainer.model.step(**kwargs)


def build_strategy(config: RunConfig, placement: Placement) -> str | Strategy:
    """A Lightning strategy (object or registry name) for `strategy.*`."""
    name = config.strategy.name
    backend = "nccl" if placement.accelerator == "gpu" else "gloo"
    if name == "deepspeed":
        return build_deepspeed_strategy(config, placement, backend)
    if name == "ddp" or (name == "auto" and config.world_size > 1):
        # DDP with one process is legal (and exercises the same code path as many).
        return DDPStrategy(process_group_backend=backend, timeout=PROCESS_GROUP_TIMEOUT)
    return "auto"


def build_deepspeed_strategy(config: RunConfig, placement: Placement, backend: str) -> DeepSpeedStrategy:
    if placement.accelerator == "cpu":
        # DeepSpeed picks its accelerator at import time; nothing CUDA is present on this path.
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    strategy_cfg = config.strategy
    strategy = CPUCapableDeepSpeedStrategy(
        config=deepspeed_config(config, placement),
        process_group_backend=backend,
        timeout=PROCESS_GROUP_TIMEOUT,
        precision_plugin=SkippableDeepSpeedPrecision(placement.precision),
    )
    log.info(
        "DeepSpeed ZeRO stage %d, optimizer offload %s, parameter offload %s, backend %s",
        strategy_cfg.zero_stage,
        strategy_cfg.offload_optimizer,
        strategy_cfg.offload_params,
        backend,
    )
    return strategy


def deepspeed_config(config: RunConfig, placement: Placement) -> dict:
    """The DeepSpeed JSON config: ZeRO stage, offload, batch sizes and clipping from the run config."""
    strategy_cfg = config.strategy
    on_gpu = placement.accelerator == "gpu"
    zero: dict[str, Any] = {
        "stage": strategy_cfg.zero_stage,
        "contiguous_gradients": True,
        "overlap_comm": on_gpu,  # overlap needs CUDA streams
        "reduce_bucket_size": 2e8,
        "allgather_bucket_size": 2e8,
    }
    if strategy_cfg.zero_stage == 3:
        zero.update({"stage3_param_persistence_threshold": 1e5, "stage3_prefetch_bucket_size": 5e7})
    if strategy_cfg.offload_optimizer != "none":
        zero["offload_optimizer"] = _offload_section(
            strategy_cfg.offload_optimizer, strategy_cfg.nvme_path, on_gpu
        )
    if strategy_cfg.offload_params != "none":
        zero["offload_param"] = _offload_section(strategy_cfg.offload_params, strategy_cfg.nvme_path, on_gpu)
    ds_config: dict[str, Any] = {
        "zero_optimization": zero,
        "zero_allow_untested_optimizer": True,
        # On CPU everything is host memory already; torch AdamW is the honest optimizer there.
        "zero_force_ds_cpu_optimizer": on_gpu,
        "train_micro_batch_size_per_gpu": config.data.batch_size,
        # gradient_accumulation_steps and gradient_clipping come from the Trainer (Lightning sets them).
        "steps_per_print": 10**9,  # Lightning and our callbacks report progress
        "wall_clock_breakdown": False,
    }
    if placement.precision.startswith("bf16"):
        ds_config["bf16"] = {"enabled": True}
    elif placement.precision.startswith("16"):
        ds_config["fp16"] = {"enabled": True, "loss_scale": 0, "initial_scale_power": 16}
    return ds_config


def _offload_section(device: str, nvme_path: str | None, on_gpu: bool) -> dict:
    section: dict[str, Any] = {"device": device, "pin_memory": on_gpu}
    if device == "nvme":
        section["nvme_path"] = nvme_path
    return section


def is_deepspeed(strategy: str | Strategy) -> bool:
    return isinstance(strategy, DeepSpeedStrategy)
