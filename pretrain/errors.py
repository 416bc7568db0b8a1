"""The one family of errors a user can fix: caught once in `pretrain.cli.main` (one line, no traceback).

Every module raises these (or a subclass defined beside the code that raises it); the CLI maps
`ConfigError` to exit 2 and every other `TubeletError` to exit 1, and the Ray runner unwraps them
from a failed run. Imports nothing, so every part of `pretrain` may import it.

    TubeletError
    ├── ConfigError      (also ValueError)    config keys and values; CLI arguments of a stage
    ├── DataError        (also RuntimeError)  shards, manifests, streams that cannot produce data
    │   └── ShardsError                       shard build/inspect/verify (pretrain.data.shards)
    │       ├── LayoutError, StrictModeError
    ├── CheckpointError  (also ValueError)    checkpoints, exports, HF folders, .pth files
    ├── UserError                             any other mistake found by a command
    │   └── JobSubmissionError                `tubelet submit` (pretrain.distributed.jobs)
    ├── TrainingDiverged (also RuntimeError)  the NaN guard stopped the run (pretrain.train.nan_guard)
    └── RayRunFailed     (also RuntimeError)  Ray Train gave up after cluster.max_failures

Not in the family, on purpose: errors that are control flow inside one part and never reach the
user as such, e.g. `DecodeError` (a sample the stream skips and counts) and `ProbeError` (a video
the shard builder lists in errors.jsonl and skips).
"""

from __future__ import annotations


class TubeletError(Exception):
    """A mistake the user can fix (bad config, path, file or data); its message says what and where."""


class ConfigError(TubeletError, ValueError):
    """A config that cannot run; the message names the offending key and what is allowed."""


class DataError(TubeletError, RuntimeError):
    """Shards, manifests or videos that cannot be used; the message names the file at fault."""


class CheckpointError(TubeletError, ValueError):
    """A path that does not hold usable weights or a usable checkpoint; the message names it."""


class UserError(TubeletError):
    """Any other user mistake found by a command (bad argument combination, missing file)."""
