"""`tubelet bench readme`: the README's figures beside a re-run of the commands that produced them."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

DEFAULT_RUNS = "infer,model,data-avi,data-h264,cores,smoke"


def register(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser(
        "readme",
        help="re-run the commands behind the README's figures; print README value, value now, ratio",
        description="Each README figure names the command that produced it; this re-runs those commands "
        "(each in its own process) and prints the README's value beside today's. Measure on a quiet "
        "machine: a ratio of two runs taken at different moments does not cancel contention.",
    )
    parser.add_argument("--runs", default=DEFAULT_RUNS, help=f"comma-separated runs (default {DEFAULT_RUNS})")
    parser.add_argument("--readme", default="README.md", help="the README to check (default ./README.md)")
    parser.add_argument(
        "--smallest",
        action="store_true",
        help="every command at a toy setting: a plumbing check, not figures",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pretrain.bench.readme import compare, load_average
    from pretrain.errors import UserError

    readme = Path(args.readme)
    if not readme.is_file():
        raise UserError(f"--readme {readme}: no such file (run from the repository root or pass --readme)")
    before = load_average()
    rows = compare(readme.read_text(), [r for r in args.runs.split(",") if r], args.smallest)
    # Only the load before counts: the runs' own threads raise the average they leave behind.
    quiet = before < 0.5 * (os.cpu_count() or 1)
    machine = {"cpus": os.cpu_count(), "load_before": before, "load_after": load_average(), "quiet": quiet}
    if args.json:
        print(json.dumps({"machine": machine, "figures": rows}))
        return 0
    print(
        f"{machine['cpus']} CPUs, load average {before:.1f} before, {machine['load_after']:.1f} after: "
        f"{'quiet' if quiet else 'LOADED (figures not comparable)'}"
    )
    print(f"{'figure':<48}{'README':>10}{'now':>10}{'ratio':>8}  command")
    for row in rows:
        flag = "" if row["within_noise"] else "  <- outside noise"
        now = "-" if row["now"] is None else f"{row['now']:.3g}"
        print(
            f"{row['figure']:<48}{row['readme']:>10.3g}{now:>10}{row['ratio']:>8.2f}  {row['command']}{flag}"
        )
    return 0
