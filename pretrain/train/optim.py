"""AdamW with the MAE parameter groups and a per-step warmup + cosine schedule.

Shared by the pretraining and fine-tuning modules. Weight decay is never applied to norms, biases
or learned tokens (1-D tensors and anything named like a token / position table). The peak lr
comes from `RunConfig.lr` (base_lr × global batch / 256); the schedule is stepped every optimizer
step, so warmup is smooth even when an epoch is thousands of steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from pretrain.config import RunConfig

# Parameter names that are learned tokens / tables rather than weights (no weight decay).
NO_DECAY_NAME_PARTS = ("token", "pos_embed", "position", "cls", "mask_token")


def is_no_decay(name: str, param: torch.Tensor) -> bool:
    """Norm weights and biases are 1-D; tokens and position tables are recognised by name."""
    return param.ndim <= 1 or name.endswith(".bias") or any(part in name for part in NO_DECAY_NAME_PARTS)


def param_groups(named_params: Iterable[tuple[str, nn.Parameter]], weight_decay: float) -> list[dict]:
    """Two AdamW groups: decayed weights and the rest. Frozen parameters are left out."""
    decay, no_decay = [], []
    decay_names, no_decay_names = [], []
    for name, param in named_params:
        if not param.requires_grad:
            continue
        if is_no_decay(name, param):
            no_decay.append(param)
            no_decay_names.append(name)
        else:
            decay.append(param)
            decay_names.append(name)
    return [
        {"params": decay, "weight_decay": weight_decay, "names": decay_names},
        {"params": no_decay, "weight_decay": 0.0, "names": no_decay_names},
    ]


def build_adamw(groups: list[dict], lr: float, betas: tuple[float, float], cpu_offload_on_gpu: bool = False):
    """torch AdamW (fused on CUDA), or DeepSpeed's CPU Adam when ZeRO offloads optimizer state
    from a GPU run."""
    groups = [{k: v for k, v in group.items() if k != "names"} for group in groups if group["params"]]
    if cpu_offload_on_gpu:
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        return DeepSpeedCPUAdam(groups, lr=lr, betas=betas, adamw_mode=True)
    on_cuda = bool(groups) and all(p.is_cuda for group in groups for p in group["params"])
    return torch.optim.AdamW(
        groups, lr=lr, betas=tuple(betas), fused=True if on_cuda else None
    )  # one kernel on CUDA


@dataclass(frozen=True)
class Schedule:
    """Per-step linear warmup to `peak_lr`, then cosine decay to `min_lr` at `total_steps`."""

    peak_lr: float
    min_lr: float
    warmup_steps: int
    total_steps: int

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.peak_lr * (step + 1) / self.warmup_steps
        decay_steps = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / decay_steps)
        return self.min_lr + (self.peak_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def lambda_scheduler(self, optimizer: torch.optim.Optimizer) -> LambdaLR:
        """A LambdaLR whose factor × the optimizer's base lr (= peak_lr) gives `lr_at(step)`."""
        for group in optimizer.param_groups:
            group["lr"] = self.peak_lr
            group.setdefault("initial_lr", self.peak_lr)
        peak = self.peak_lr
        return LambdaLR(optimizer, lambda step: self.lr_at(step) / peak)


def schedule_for(config: RunConfig, steps_per_epoch: int, peak_lr: float | None = None) -> Schedule:
    """Total and warmup steps from epochs; `trainer.max_steps` shortens the run keeping the ratio."""
    steps_per_epoch = max(1, steps_per_epoch)
    epochs, warmup_epochs = config.optim.epochs, config.optim.warmup_epochs
    total = config.trainer.max_steps if config.trainer.max_steps > 0 else epochs * steps_per_epoch
    warmup = int(round(total * warmup_epochs / epochs))
    return Schedule(
        peak_lr=config.lr if peak_lr is None else peak_lr,
        min_lr=config.optim.min_lr,
        warmup_steps=warmup,
        total_steps=total,
    )
