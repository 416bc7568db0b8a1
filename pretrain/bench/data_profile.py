"""`tubelet bench data --profile`: CPU milliseconds per clip in each stage of the pretraining loader.

One in-process loader (one core, as a loader worker has) runs the real pipeline on the shards with
the stage clock on (`pretrain.data.stage_clock`): shard read and tar parsing, demux, decode, colour
conversion, crop and resize, masks, collate. The clock reads wall time; each stage's share is
scaled to the CPU time the process spent over the same clips, and what no stage claims (sampling,
crop boxes, the loader's own iteration) is `other`. Shared memory is measured apart: a loader
worker allocates each batch in shared memory (`batching.new_shared_tensor`), whose fresh pages fault
when first written; in-process batches reuse ordinary memory. The row is that difference.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from pretrain.bench.data import BATCH, _stream, bench_config
from pretrain.data.stage_clock import CLOCK, STAGES
from pretrain.data.streams.allocator import keep_large_buffers
from pretrain.data.streams.batching import new_shared_tensor
from pretrain.data.streams.pretrain_stream import build_pretrain_loader

ROWS = (*STAGES, "shared_memory", "other")
LABELS = {
    "read": "shard read + tar parsing",
    "demux": "demux (open, seek, packets)",
    "decode": "decode",
    "convert": "colour conversion",
    "crop_resize": "crop + resize (+ mirror)",
    "masks": "masks",
    "collate": "collate",
    "shared_memory": "shared memory (measured apart)",
    "other": "other (sampling, boxes, loop)",
}


@dataclass
class StageProfile:
    num_sample: int
    clips: int
    cpu_ms_per_clip: float
    """All CPU time of the run per clip (shared memory excluded: measured apart)."""
    ms_per_clip: dict[str, float]


def profile_stages(shards: str, num_sample: int, clips: int = 48) -> StageProfile:
    """Per-clip CPU ms of each stage over `clips` clips (after two untimed batches)."""
    torch.set_num_threads(1)  # one core per loader process, as in training
    keep_large_buffers()
    config = bench_config(shards, 0, num_sample)
    batches = _stream(build_pretrain_loader(config, 0, 1))
    for _ in range(2):
        next(batches)
    CLOCK.reset(enabled=True)
    done, cpu, wall = 0, time.process_time(), time.perf_counter()
    try:
        while done < clips:
            batch = next(batches)
            done += len(batch["key"])
    finally:
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        measured = dict(CLOCK.ns)
        CLOCK.reset(enabled=False)
    cpu_share = cpu / wall if wall else 1.0  # the machine's other work stretched the wall time
    per_clip = {stage: ns / 1e6 * cpu_share / done for stage, ns in measured.items()}
    per_clip["other"] = max(cpu * 1e3 / done - sum(per_clip.values()), 0.0)
    per_clip["shared_memory"] = shared_memory_ms_per_clip(batch["video"].shape)
    return StageProfile(num_sample, done, cpu * 1e3 / done, {row: round(per_clip[row], 3) for row in ROWS})


def shared_memory_ms_per_clip(batch_shape: torch.Size, repeats: int = 5) -> float:
    """CPU ms per clip that a worker's batch in shared memory adds: allocating a batch of
    `batch_shape` uint8 there and writing it once (fresh pages fault on the first write), less
    writing the same bytes into reused memory (what the in-process run's renders already paid)."""
    shape, reused = tuple(batch_shape), torch.empty(tuple(batch_shape), dtype=torch.uint8)
    start = time.process_time()
    for _ in range(repeats):
        new_shared_tensor(shape, torch.uint8).fill_(1)
    shared = time.process_time() - start
    start = time.process_time()
    for _ in range(repeats):
        reused.fill_(1)
    written = time.process_time() - start
    return max(shared - written, 0.0) * 1e3 / (repeats * batch_shape[0])


def format_profiles(profiles: list[StageProfile], shards: str) -> str:
    """The table: a row per stage, a column per num_sample."""
    head = f"{'stage (CPU ms per clip)':<34}" + "".join(
        f"{'num_sample=' + str(p.num_sample):>16}" for p in profiles
    )
    lines = [
        f"{shards}: batches of {BATCH}, VideoMAE-B clip (16 frames, data.stride 4, 224 px, mask 0.9)",
        head,
    ]
    for row in ROWS:
        lines.append(f"{LABELS[row]:<34}" + "".join(f"{p.ms_per_clip[row]:>16.3f}" for p in profiles))
    lines.append(
        f"{'total (CPU, shared memory apart)':<34}" + "".join(f"{p.cpu_ms_per_clip:>16.3f}" for p in profiles)
    )
    after = [sum(p.ms_per_clip[r] for r in ROWS if r not in ("read", "demux", "decode")) for p in profiles]
    lines.append(f"{'all stages after decode':<34}" + "".join(f"{a:>16.3f}" for a in after))
    return "\n".join(lines)
