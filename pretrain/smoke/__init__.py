"""`tubelet smoke`: the whole stack on one device in minutes, every step asserting its outcome.

generated videos → shards build + verify → pretrain (DeepSpeed ZeRO-2, one process; bf16-mixed on
CUDA, fp32 on CPU) → checkpoint → resume from the mid-run checkpoint (equal to the uninterrupted
run) → export → short fine-tune from the export (with its multi-view test) → evaluate → predict,
plus the CUDA kernel checks (fused SDPA, fused AdamW). Results go to `smoke.json`:
`{"checks": {name: bool}, "figures": {...}}`. Every step calls the library function its command
calls (`train.entry.run_stage`, `weights.export_checkpoint`, `evaluate.run.evaluate`,
`evaluate.predict.predict`), not the CLI: only `tubelet smoke` itself goes through `pretrain.cli`.
"""

from pretrain.smoke.report import SmokeFailed, SmokeReport

__all__ = ["SmokeFailed", "SmokeReport"]
