"""DeepSpeed ZeRO-2 and ZeRO-3 on CUDA in one process, with and without CPU optimizer offload
(DeepSpeed's CPU Adam, JIT-built on first use), through the real pretraining stage in bf16; the
checkpoint of each consolidates into an export that computes the same loss on the CPU."""

from __future__ import annotations

import json
import math

import pytest
import torch
from gpu_helpers import gpu_stage_overrides

from pretrain.config import load_config
from pretrain.train.entry import run_stage

pytestmark = pytest.mark.gpu

STEPS = 3


@pytest.mark.parametrize("stage", [2, 3])
@pytest.mark.parametrize("offload", ["none", "cpu"])
def test_zero_stage_trains_checkpoints_and_exports(stage, offload, motion_shards, tmp_path, exact_fp32):
    name = f"zero{stage}-offload-{offload}"
    config = load_config(
        "pretrain/tiny",
        gpu_stage_overrides(motion_shards, tmp_path, name)
        + [
            "data.split=train",
            "strategy.name=deepspeed",
            f"strategy.zero_stage={stage}",
            f"strategy.offload_optimizer={offload}",
            f"trainer.max_steps={STEPS}",
            f"trainer.checkpoint_every_steps={STEPS}",
        ],
    )
    result = run_stage(config)
    assert result.global_step == STEPS
    assert math.isfinite(result.metrics["train/loss"])
    meta = json.loads((result.last_checkpoint / "meta.json").read_text())
    assert meta["deepspeed"] is True and meta["zero_stage"] == stage
    _export_matches_on_cpu(result.last_checkpoint, tmp_path / "export")


def _export_matches_on_cpu(checkpoint, out):
    from pretrain.smoke.kernels import videomae_inputs
    from pretrain.weights import export_checkpoint, from_pretrained

    export_checkpoint(checkpoint, out)
    on_gpu = from_pretrained(checkpoint).cuda().eval()
    on_cpu = from_pretrained(out).eval()  # the export alone, on the CPU
    inputs = videomae_inputs(on_gpu.spec, 2, 0.75, torch.device("cpu"))
    with torch.no_grad():
        cpu_loss = on_cpu(**inputs).loss
        gpu_loss = on_gpu(**{k: v.cuda() if v is not None else None for k, v in inputs.items()}).loss.cpu()
    assert torch.allclose(cpu_loss, gpu_loss, rtol=1e-4), (float(cpu_loss), float(gpu_loss))
