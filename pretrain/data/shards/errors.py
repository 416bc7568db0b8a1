"""Errors raised for problems the user can fix (layout, split files, bad videos under --strict)."""

from __future__ import annotations

from pretrain.errors import DataError


class ShardsError(DataError):
    """A shard build, inspect or verify problem with a message naming the file at fault."""


class LayoutError(ShardsError):
    """The input directory does not have the layout the chosen source expects."""


class StrictModeError(ShardsError):
    """A bad input under `--strict` (unreadable video or split-file problem)."""
