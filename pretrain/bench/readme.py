"""`tubelet bench readme`: re-run the commands behind the README's figures and print each figure the
README states beside the value measured now, with their ratio.

A figure is a number in README.md found by a pattern, the command that produced it (a `Run`, the exact
`tubelet ...` command line, run as a subprocess with `--json`), and how to read the number from that
command's result. Runs are shared: one `bench infer` gives eight figures. `smallest=True` runs every
command at a toy setting (seconds): the plumbing check of the test, not a measurement.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pretrain.errors import UserError

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


def _key(*path: str) -> Callable[[Result], float]:
    def read(result: Result) -> float:
        node: Any = result
        for part in path:
            node = node[part]
        return float(node)

    return read


def _latency_s(variant: str) -> Callable[[Result], float]:
    return lambda r: r["variants"][variant]["latency_ms"] / 1000


def _clips_per_s(variant: str) -> Callable[[Result], float]:
    return lambda r: r["variants"][variant]["clips_per_s"]


def _eager_ratio(r: Result) -> float:
    return r["variants"]["transformers eager"]["latency_ms"] / r["variants"]["ours eager"]["latency_ms"]


RUNS = {
    run.name: run
    for run in (
        Run(
            "infer",
            (
                "bench",
                "infer",
                "--size",
                "s",
                "--threads",
                "2",
                "--batch",
                "2",
                "--reps",
                "5",
                "--warmup",
                "2",
                "--json",
            ),
            ("bench", "infer", "--size", "tiny", "--img-size", "32", "--num-frames", "4", "--batch", "1")
            + ("--reps", "1", "--warmup", "0", "--no-compile", "--json"),
        ),
        Run(
            "model",
            (
                "bench",
                "model",
                "--size",
                "s",
                "--batch",
                "2",
                "--threads",
                "2",
                "--reps",
                "5",
                "--compile",
                "--json",
            ),
            ("bench", "model", "--size", "tiny", "--img-size", "32", "--num-frames", "4", "--batch", "1")
            + ("--reps", "1", "--warmup", "0", "--json"),
        ),
        Run(
            "data-avi",
            ("bench", "data", "{out}/avi", "--generate", "avi", "--json"),
            ("bench", "data", "{out}/avi", "--generate", "avi", "--videos", "2", "--frames", "40")
            + ("--clips", "2", "--multiview-videos", "1", "--rounds", "1", "--json"),
        ),
        Run(
            "data-h264",
            ("bench", "data", "{out}/h264", "--generate", "h264", "--json"),
            ("bench", "data", "{out}/h264", "--generate", "h264", "--videos", "2", "--frames", "40")
            + ("--clips", "2", "--multiview-videos", "1", "--rounds", "1", "--json"),
        ),
        Run("cores", ("bench", "cores", "--json"), ("bench", "cores", "--core-rates", "1=8,4=30", "--json")),
        Run(
            "smoke",
            ("smoke", "--out", "{out}/smoke"),
            ("smoke", "--small", "--out", "{out}/smoke"),
            "smoke/smoke.json",
        ),
    )
}


def _data_row(label: str, key: str, tolerance: float = 0.15) -> list[Figure]:
    """One row of the README's data table: the AVI column (group 1) and the H.264 column (group 2)."""
    pattern = rf"\| {re.escape(label)} \| ([\d.]+)×? \| ([\d.]+)×? \|"
    return [
        Figure(f"data {codec}: {label}", f"data-{codec}", _key(key), pattern, group, tolerance)
        for group, codec in ((1, "avi"), (2, "h264"))
    ]


FIGURES: list[Figure] = [
    Figure(
        "infer: ours eager, batch-1 s", "infer", _latency_s("ours eager"), r"\| ours eager \| ([\d.]+) s \|"
    ),
    Figure(
        "infer: transformers eager, batch-1 s",
        "infer",
        _latency_s("transformers eager"),
        r"\| transformers eager \| ([\d.]+) s \|",
    ),
    Figure(
        "infer: ours eager vs transformers eager",
        "infer",
        _eager_ratio,
        r"ours ([\d.]+)x faster eager",
        1,
        0.1,
    ),
    Figure("model: ours eager s/step", "model", _key("ours_step_s"), r"ours eager ([\d.]+) s/step"),
    Figure(
        "model: transformers eager s/step",
        "model",
        _key("hf_step_s"),
        r"transformers eager ([\d.]+), compiled",
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
    *_data_row("num_sample=4 vs 1 (≥ 2.5)", "repeated_sampling_speedup", 0.15),
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
]


def readme_value(readme: str, figure: Figure) -> float:
    """The README's value of `figure`; a UserError when its pattern is missing or ambiguous."""
    found = re.findall(figure.pattern, readme)
    if len(found) != 1:
        raise UserError(
            f"README figure {figure.name!r}: pattern {figure.pattern!r} matches {len(found)} times"
        )
    match = found[0]
    return float(match[figure.group - 1] if isinstance(match, tuple) else match)


def run_command(run: Run, smallest: bool, scratch: Path) -> Result:
    """Run `run` as `tubelet ...` in a fresh process; its JSON result plus `wall_s`."""
    out = scratch / run.name
    out.mkdir(parents=True, exist_ok=True)
    argv = [arg.replace("{out}", str(out)) for arg in (run.smallest if smallest else run.argv)]
    tubelet = [
        sys.executable,
        "-c",
        "import sys; from pretrain.cli import main; sys.exit(main(sys.argv[1:]))",
    ]
    start = time.perf_counter()
    done = subprocess.run(tubelet + argv, capture_output=True, text=True, env=os.environ.copy())
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise UserError(
            f"`{run.command(smallest)}` failed (exit {done.returncode}): {done.stderr.strip()[-500:]}"
        )
    text = (out / run.result_file).read_text() if run.result_file else done.stdout
    result = json.loads(text[text.index("{") :])
    result.setdefault("wall_s", wall)
    return result


def _measured(figure: Figure, result: Result) -> float | None:
    """The figure's value in `result`; None where the run's setting does not produce it (--smallest
    does not compile, so it has no compiled figures)."""
    try:
        return figure.value(result)
    except KeyError:
        return None


def load_average() -> float:
    return os.getloadavg()[0]


def compare(readme: str, runs: list[str], smallest: bool) -> list[dict[str, Any]]:
    """Every figure of `runs`: its README value, the value now and their ratio."""
    unknown = sorted(set(runs) - set(RUNS))
    if unknown:
        raise UserError(f"unknown run(s) {unknown}; choose from {sorted(RUNS)}")
    figures = [f for f in FIGURES if f.run in runs]
    stated = {f.name: readme_value(readme, f) for f in figures}  # fail before any run
    scratch = Path(tempfile.mkdtemp(prefix="tubelet-readme-"))
    try:
        results = {name: run_command(RUNS[name], smallest, scratch) for name in runs}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rows = []
    for figure in figures:
        now = _measured(figure, results[figure.run])
        ratio = now / stated[figure.name] if now is not None and stated[figure.name] else float("nan")
        rows.append(
            {
                "figure": figure.name,
                "command": RUNS[figure.run].command(smallest),
                "readme": stated[figure.name],
                "now": now,
                "ratio": ratio,
                "within_noise": abs(ratio - 1) <= figure.tolerance,
            }
        )
    return rows
