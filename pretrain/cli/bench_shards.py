"""`tubelet bench shards` (placeholder until its issue lands)."""

from __future__ import annotations

import argparse


def register(benches: argparse._SubParsersAction) -> None:
    """Filled in by the shards work."""
