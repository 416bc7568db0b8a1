"""The one family of errors a user can fix: caught once in `pretrain.cli.main` (one line, no traceback).

Every module raises these (or a subclass defined beside the code that raises it); the CLI maps
`ConfigError` to exit 2 and every other `TubeletError` to exit 1, and the Ray runner unwraps them
from a failed run. Imports nothing, so every part of `pretrain` may import it.
"""

from __future__ import annotations


class TubeletError(Exception):
    """A mistake the user can fix (bad config, path, file or data); its message says what and where."""


class ConfigError(TubeletError, ValueError):
    """A config that cannot run; the message names the offending key and what is allowed."""


class DataError(TubeletError, RuntimeError):
    """Shards, manifests or videos that cannot be used; the message names the file at fault."""


class CheckpointError(TubeletError, RuntimeError):
    """A path that does not hold usable weights or a usable checkpoint; the message names it."""


class UserError(TubeletError):
    """Any other user mistake found by a command (bad argument combination, missing file)."""
