"""`tubelet bench {model,shards,data,zero,cores}`: benchmarks that print figures and ratios against a
baseline run side by side in the same process. Each lives in its own `pretrain/cli/bench_*.py`."""

from __future__ import annotations

import argparse
import importlib

BENCH_MODULES = (
    "bench_model",
    "bench_shards",
    "bench_data",
    "bench_zero",
    "bench_cores",
    "bench_infer",
    "bench_encoding",
    "bench_readme",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="measure speed and memory against baselines")
    benches = parser.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for name in BENCH_MODULES:
        importlib.import_module(f"pretrain.cli.{name}").register(benches)
