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

And what the console shows (`configure_console`): by default Tubelet's own records (stage lines,
progress, results) and anything at WARNING or above; library INFO chatter (Lightning's "GPU
available", DeepSpeed's setup) only reaches the run folder's `tubelet.log`
(`pretrain.train.loggers.run_log_file`) and W&B is silent (its own log is in its run folder).
`tubelet -v` shows everything.
"""

from __future__ import annotations

import contextlib
import logging
import os
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


CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
OWN_LOGGERS = "pretrain"
LIBRARY_LOGGERS_WITH_HANDLERS = ("DeepSpeed",)
"""Libraries that print through a handler of their own: routed through the root (console filter,
run log file) by `route_library_loggers`."""


class OwnRecordsOnly(logging.Filter):
    """The default console: Tubelet's records, and any library's warnings and errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.split(".")[0] == OWN_LOGGERS


def configure_console(verbose: bool) -> None:
    """Like `logging.basicConfig` (nothing happens when the root already has handlers, as under
    pytest), with the default console limited to `OwnRecordsOnly` and W&B silenced."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(CONSOLE_FORMAT))
    if not verbose:
        handler.addFilter(OwnRecordsOnly())
        os.environ.setdefault("WANDB_SILENT", "true")  # wandb's "wandb: ..." lines print, not log
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def route_library_loggers() -> None:
    """DeepSpeed (imported late) logs through its own stdout handler: send it through the root
    (when there is one to take it)."""
    if not logging.getLogger().handlers:
        return
    for name in LIBRARY_LOGGERS_WITH_HANDLERS:
        if name in logging.Logger.manager.loggerDict:
            logger = logging.getLogger(name)
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True


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
