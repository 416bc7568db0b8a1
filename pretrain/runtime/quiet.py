"""Library messages that do not concern a Tubelet user, silenced where they are wrong for us.

- Lightning's "your dataloader is not resumable" on a mid-epoch resume: our stream resumes
  itself (its position travels in the checkpoint callback's state, `pretrain.train.resumable_stream`).
- "The number of training batches (N) is smaller than the logging interval": runs are bounded
  by steps over an endless stream, and Lightning logs every `log_every_n_steps` optimizer steps
  across epochs, so short epochs still log.
- "Your `IterableDataset` has `__len__` defined ... num_workers > 1": our streams split shards
  by rank and worker themselves, so the length is exact.
- torch's `LeafSpec` deprecation, raised inside Lightning's own pytree helper.
- Lightning's litlogger / litmodels advertising tips.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

IGNORED_WARNINGS = (
    r".*checkpoint that ended before the epoch ended and your dataloader is not resumable.*",
    r".*number of training batches \(\d+\) is smaller than the logging interval.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
    r"Your `IterableDataset` has `__len__` defined.*",
)
LIGHTNING_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero")


class DropTips(logging.Filter):
    """Drops Lightning's "💡 Tip: ... try installing litlogger/litmodels" records."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip: For seamless cloud" not in record.getMessage()


@contextlib.contextmanager
def quiet_library_noise() -> Iterator[None]:
    """Within: the warnings and tips above are dropped; everything else passes as before."""
    tips = DropTips()
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    for logger in loggers:
        logger.addFilter(tips)
    try:
        with warnings.catch_warnings():
            for message in IGNORED_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(tips)
