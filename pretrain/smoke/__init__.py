"""`tubelet smoke`: the whole stack on one device in minutes, every step asserting its outcome.

generated videos → shards build + verify → pretrain (DeepSpeed ZeRO-2, one process; bf16-mixed on
CUDA, fp32 on CPU) → checkpoint → resume from the mid-run checkpoint (equal to the uninterrupted
run) → export → short fine-tune from the export (with its multi-view test) → `tubelet evaluate`
→ `tubelet predict`, plus the CUDA kernel checks (fused SDPA, fused AdamW). Results go to
`smoke.json`: `{"checks": {name: bool}, "figures": {...}}`. Every stage runs through the same
entry points a user types (`pretrain.cli.main`), so the smoke run tests what ships.
"""

from pretrain.smoke.report import SmokeFailed, SmokeReport

__all__ = ["SmokeFailed", "SmokeReport"]
