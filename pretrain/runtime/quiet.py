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
from pathlib import Path

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


EXPORTER_LOGGERS = ("torch.onnx", "torch._dynamo", "torch.export", "onnx_ir", "onnxscript", "onnxruntime")
"""Loggers of the ONNX exporter and quantizer: pass lines, initializer dedup, optimizer notes."""


class OnlyOurs(logging.Filter):
    """Lets through records of Tubelet's own loggers (`pretrain.*`) only: onnxruntime's quantizer
    logs through the root logger itself, so its lines cannot be told apart by logger name."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith("pretrain")


@contextlib.contextmanager
def library_chatter_to(log_file: Path) -> Iterator[None]:
    """Within: warnings and the exporter's log lines (`EXPORTER_LOGGERS`, the root logger's foreign
    records) go to `log_file` instead of the terminal; Tubelet's own log lines still show."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    ours = OnlyOurs()
    saved = []
    for name in EXPORTER_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.propagate, logger.handlers[:]))
        logger.handlers, logger.propagate = [handler], False
    for console in root.handlers:
        console.addFilter(ours)
    root.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = lambda message, category, filename, lineno, *_: handler.emit(
                logging.LogRecord(
                    "py.warnings",
                    logging.WARNING,
                    filename,
                    lineno,
                    f"{category.__name__}: {message}",
                    None,
                    None,
                )
            )
            yield
    finally:
        root.removeHandler(handler)
        for console in root.handlers:
            console.removeFilter(ours)
        for logger, propagate, handlers in saved:
            logger.handlers, logger.propagate = handlers, propagate
        handler.close()
