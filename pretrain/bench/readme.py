"""`tubelet bench readme`: re-run the commands behind the README's figures and print each figure the
README states beside the value measured now, with their ratio.

A figure is a number in README.md found by a pattern, the command that produced it (a `Run`, the exact
`tubelet ...` command line, run as a subprocess with `--json`), and how to read the number from that
command's result (the registry: `readme_figures.py`). `smallest=True` runs every command at a toy
setting (seconds): the plumbing check of the test, not a measurement.
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
from pathlib import Path
from typing import Any

from pretrain.bench.readme_figures import FIGURES, RUNS, Figure, Result, Run
from pretrain.errors import UserError


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
