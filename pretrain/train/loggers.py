"""Experiment tracking: W&B through Lightning's WandbLogger, CSV beside it, rank-zero-only logs.

The W&B mode comes from `logging.wandb` unless the WANDB_MODE environment variable is set. The
API key is read by wandb itself from the environment or its netrc; nothing here reads, logs or
saves it, and the logged config is the run config (which holds no secrets).
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from pretrain.config import RunConfig, config_to_dict
from pretrain.runtime.quiet import CONSOLE_FORMAT, route_library_loggers
from pretrain.train.wandb_logger import GlobalStepWandbLogger

log = logging.getLogger(__name__)

WANDB_ID_FILE = "wandb_id.txt"
CSV_DIR = "csv"
WANDB_MODES = ("online", "offline", "disabled")


def wandb_mode(config: RunConfig) -> str:
    """WANDB_MODE from the environment wins over `logging.wandb` (e.g. CI forces offline)."""
    mode = os.environ.get("WANDB_MODE") or config.logging.wandb
    if mode == "dryrun":  # wandb's old name for offline
        mode = "offline"
    return mode if mode in WANDB_MODES else config.logging.wandb


def wandb_run_id(run_dir: Path) -> str:
    """One W&B run per run directory: a resumed run keeps logging into the same W&B run."""
    id_file = run_dir / WANDB_ID_FILE
    if id_file.is_file():
        return id_file.read_text().strip()
    run_id = f"{run_dir.name[:40]}-{secrets.token_hex(4)}".replace("/", "-")
    if rank_zero_only.rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        id_file.write_text(run_id)
    return run_id


def build_loggers(config: RunConfig, run_dir: Path, run_id: str | None = None) -> list[Logger]:
    """CSV (when `logging.csv`) and W&B (unless disabled); all write under the run directory."""
    loggers: list[Logger] = []
    if config.logging.csv:
        loggers.append(HistoryCSVLogger(save_dir=str(run_dir), name=CSV_DIR, version=""))
    mode = wandb_mode(config)
    if mode != "disabled":
        loggers.append(
            GlobalStepWandbLogger(
                project=config.logging.project,
                entity=config.logging.entity,
                name=run_dir.name,
                id=run_id or wandb_run_id(run_dir),
                save_dir=str(run_dir),
                mode=mode,
                resume="allow",
                config=config_to_dict(config),
                log_model=False,
            )
        )
    log.info("loggers: %s (W&B mode %s)", [type(lg).__name__ for lg in loggers], mode)
    return loggers


class HistoryWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing metrics.csv, which on a resumed run is the whole
    history. This one keeps it: at the first save it drops only the rows from the first step the
    resumed run logs onwards (what the interrupted run logged after its checkpoint, logged again
    now) and appends."""

    def __init__(self, log_dir: str) -> None:
        self._history_pending = True
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        """Lightning's version warns and deletes metrics.csv; the history is trimmed in `save`."""

    def save(self) -> None:
        if self._history_pending and self.metrics:
            self._history_pending = False
            self._trim_history(min(int(row["step"]) for row in self.metrics))
        super().save()

    def _trim_history(self, first_new_step: int) -> None:
        if not self._fs.isfile(self.metrics_file_path):
            return
        with self._fs.open(self.metrics_file_path, "r", newline="") as handle:
            reader = csv.DictReader(handle)
            keys, rows = list(reader.fieldnames or []), list(reader)
        kept = [row for row in rows if row.get("step") and int(float(row["step"])) < first_new_step]
        if not kept:
            self._fs.rm_file(self.metrics_file_path)
            return
        log.info(
            "%s: keeping %d earlier row(s) before step %d, dropping %d",
            self.metrics_file_path,
            len(kept),
            first_new_step,
            len(rows) - len(kept),
        )
        with self._fs.open(self.metrics_file_path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys)
            writer.writeheader()
            writer.writerows(kept)
        self.metrics_keys = sorted(keys)


class HistoryCSVLogger(CSVLogger):
    """CSVLogger whose metrics.csv survives a resume in the same run directory (`HistoryWriter`)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> HistoryWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = HistoryWriter(log_dir=self.log_dir)
        return self._experiment


class RankZeroFilter(logging.Filter):
    """Drops records on ranks other than zero, so N processes print one log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return rank_zero_only.rank == 0 or record.levelno >= logging.ERROR


def install_rank_zero_logging(library_loggers: tuple[str, ...] = ("DeepSpeed",)) -> None:
    """Attach the rank-zero filter to the root handlers and those of libraries with their own."""
    handlers = list(logging.getLogger().handlers)
    for name in library_loggers:
        handlers += logging.getLogger(name).handlers
    for handler in handlers:
        if not any(isinstance(f, RankZeroFilter) for f in handler.filters):
            handler.addFilter(RankZeroFilter())


def finish_loggers(loggers: list[Logger]) -> None:
    """Close the W&B run so its offline directory is complete (and a next run starts a new one)."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and rank_zero_only.rank == 0:
            import wandb

            if wandb.run is not None:
                wandb.finish()


@contextlib.contextmanager
def run_log_file(run_dir: Path) -> Iterator[Path]:
    """Within: every record at INFO and above, libraries' included (which the default console
    leaves out), is appended to `run_dir/tubelet.log` on rank zero."""
    route_library_loggers()
    path = run_dir / "tubelet.log"
    root = logging.getLogger()
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8", delay=True)  # opened by rank zero's first record
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(CONSOLE_FORMAT))
    handler.addFilter(RankZeroFilter())
    level = root.level
    if level > logging.INFO:  # a quiet root (WARNING) still fills the file
        root.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()
