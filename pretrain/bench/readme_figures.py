"""The README's figures that `tubelet bench readme` re-measures: each command (a `Run`) and each number
(a `Figure`: where the README states it, how to read it from the command's JSON result, its noise).

Runs are shared: one `bench infer` gives three figures. `smallest` is each command at a toy setting
(seconds): the plumbing check of the test, not a measurement.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Result = dict[str, Any]


@dataclass(frozen=True)
class Run:
    """One command behind README figures. `{out}` in an argument is a scratch folder of the run."""

    name: str
    argv: tuple[str, ...]
    smallest: tuple[str, ...]
    result_file: str | None = None
    """Read the result from this file under `{out}` instead of stdout (smoke writes smoke.json)."""

    def command(self, smallest: bool) -> str:
        return "tubelet " + " ".join(self.smallest if smallest else self.argv)


@dataclass(frozen=True)
class Figure:
    name: str
    run: str
    value: Callable[[Result], float]
    pattern: str
    """A regex matching README.md exactly once; group `group` is the README's value."""
    group: int = 1
    tolerance: float = 0.15
    """Relative difference still called a match: the run-to-run noise of that figure."""


def _run(name: str, command: str, smallest: str, result_file: str | None = None) -> Run:
    return Run(name, tuple(command.split()), tuple(smallest.split()), result_file)


TOY_MODEL = "--size tiny --img-size 32 --num-frames 4 --batch 1 --reps 1 --warmup 0"
TOY_DATA = "--videos 2 --frames 40 --clips 2 --multiview-videos 1 --rounds 1"
BACKBONE_MODEL = "--size s --img-size 112 --num-frames 8 --batch 2 --threads 2 --reps 3 --warmup 1"

RUNS = {
    run.name: run
    for run in (
        _run(
            "infer",
            "bench infer --size s --threads 2 --batch 2 --reps 5 --warmup 2 --json",
            f"bench infer {TOY_MODEL} --no-compile --json",
        ),
        _run(
            "model",
            "bench model --size s --batch 2 --threads 2 --reps 5 --compile --json",
            f"bench model {TOY_MODEL} --json",
        ),
        _run(
            "data-avi",
            "bench data {out}/avi --generate avi --json",
            f"bench data {{out}}/avi --generate avi {TOY_DATA} --json",
        ),
        _run(
            "data-h264",
            "bench data {out}/h264 --generate h264 --json",
            f"bench data {{out}}/h264 --generate h264 {TOY_DATA} --json",
        ),
        _run("cores", "bench cores --json", "bench cores --core-rates 1=8,4=30 --json"),
        _run("smoke", "smoke --out {out}/smoke", "smoke --small --out {out}/smoke", "smoke/smoke.json"),
        _run(
            "timesformer",
            f"bench model --backbone timesformer {BACKBONE_MODEL} --json",
            f"bench model --backbone timesformer {TOY_MODEL} --json",
        ),
        _run(
            "vivit",
            f"bench model --backbone vivit {BACKBONE_MODEL} --json",
            f"bench model --backbone vivit {TOY_MODEL} --json",
        ),
    )
}


def _key(*path: str) -> Callable[[Result], float]:
    def read(result: Result) -> float:
        node: Any = result
        for part in path:
            node = node[part]
        return float(node)

    return read


def _latency_s(variant: str) -> Callable[[Result], float]:
    return lambda r: r["variants"][variant]["latency_ms"] / 1000


def _eager_ratio(r: Result) -> float:
    return r["variants"]["transformers eager"]["latency_ms"] / r["variants"]["ours eager"]["latency_ms"]


def _data_row(label: str, key: str, tolerance: float = 0.15) -> list[Figure]:
    """One row of the README's data table: the AVI column (group 1) and the H.264 column (group 2)."""
    pattern = rf"\| {re.escape(label)} \| ([\d.]+)×? \| ([\d.]+)×? \|"
    return [
        Figure(f"data {codec}: {label}", f"data-{codec}", _key(key), pattern, group, tolerance)
        for group, codec in ((1, "avi"), (2, "h264"))
    ]


def _classifier_step(backbone: str) -> list[Figure]:
    """`bench model --backbone B`: ours vs transformers' classifier step, as the README states them:
    "`B` classifier step: ours X s, transformers Y s (Rx"."""
    pattern = rf"`{backbone}`\s+classifier step:\s+ours ([\d.]+) s,\s+transformers ([\d.]+) s\s+\(([\d.]+)x"
    read = {"ours": _key("classifier", "step_s", "ours"), "hf": _key("classifier", "step_s", "hf")}
    return [
        Figure(f"{backbone}: ours classifier s/step", backbone, read["ours"], pattern, 1, 0.2),
        Figure(f"{backbone}: transformers classifier s/step", backbone, read["hf"], pattern, 2, 0.2),
        Figure(f"{backbone}: classifier speedup", backbone, _key("classifier", "speedup"), pattern, 3, 0.1),
    ]


def _pretraining_step(backbone: str) -> Figure:
    """The backbone table's pretraining step (s/step, batch 2), from the timesformer run's table."""
    pattern = rf"\| `{backbone}`[^\n]*\| [\d.]+ GFLOP; ([\d.]+) s \|"
    return Figure(
        f"pretraining step s: {backbone}",
        "timesformer",
        _key("pretraining", "step_s", backbone),
        pattern,
        1,
        0.3,  # 3 reps of a 0.1-0.3 s step: two quiet runs differed by 25%
    )


FIGURES: list[Figure] = [
    Figure(
        "infer: ours eager, batch-1 s",
        "infer",
        _latency_s("ours eager"),
        r"\| ours eager \| ([\d.]+) s",
        1,
        0.2,
    ),
    Figure(
        "infer: transformers eager, batch-1 s",
        "infer",
        _latency_s("transformers eager"),
        r"\| transformers eager \| ([\d.]+) s",
        1,
        0.2,
    ),
    Figure(
        "infer: ours eager vs transformers eager",
        "infer",
        _eager_ratio,
        r"ours ([\d.]+)x faster eager",
        1,
        0.15,
    ),
    Figure("model: ours eager s/step", "model", _key("ours_step_s"), r"ours eager ([\d.]+) s/step"),
    Figure(
        "model: transformers eager s/step",
        "model",
        _key("hf_step_s"),
        r"transformers\s+eager ([\d.]+) s/step",
    ),
    Figure(
        "model: ours compiled vs transformers eager",
        "model",
        _key("speedup_compiled_vs_hf_eager"),
        r"Ours compiled is\s+([\d.]+)× transformers eager",
        1,
        0.1,
    ),
    *_data_row("pipeline, clips/s", "clips_per_s"),
    *_data_row("decode-only floor, clips/s", "floor_clips_per_s"),
    *_data_row("pipeline time vs floor (≤ 1.25)", "pipeline_over_floor", 0.1),
    *_data_row("decode + RGB frames only (reference)", "decode_rgb_over_floor", 0.1),
    *_data_row("vs decord per-file loading (≥ 1, ≥ 1.3 on H.264)", "speedup_vs_baseline", 0.3),
    *_data_row("num_sample=4 vs 1 (≥ 2.5)", "repeated_sampling_speedup"),
    *_data_row(
        "multi-view, 15 views: decode once vs each view decoding its window (≥ 5)", "multiview_speedup"
    ),
    *_data_row("multi-view: decode once vs VideoMAE's test loader", "multiview_speedup_vs_videomae"),
    *_data_row("float batches normalized in the loader vs floor", "float_over_floor", 0.3),
    Figure(
        "cores: clips per CPU-second, num_sample=1",
        "cores",
        _key("core_clips_per_s", "1"),
        r"num_sample=1 \(([\d.]+) clips/s per core\)",
    ),
    Figure(
        "cores: clips per CPU-second, num_sample=4",
        "cores",
        _key("core_clips_per_s", "4"),
        r"num_sample=4 \(([\d.]+) clips/s per core\)",
    ),
    Figure(
        "smoke: checks",
        "smoke",
        lambda r: len(r["checks"]),
        r"\(2026-[\d-]+,[^)]*\):\s+(\d+) checks in",
        1,
        0.0,
    ),
    Figure("smoke: wall seconds", "smoke", _key("wall_s"), r"checks in [\d]+–([\d]+) s wall", 1, 0.3),
    *_classifier_step("timesformer"),
    *_classifier_step("vivit"),
    *(_pretraining_step(backbone) for backbone in ("vit", "timesformer", "vivit")),
]
