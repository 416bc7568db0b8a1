"""`tubelet submit` commands (placeholder until their issue lands)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Filled in by the submit work."""
