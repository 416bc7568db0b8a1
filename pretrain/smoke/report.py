"""The smoke run's record: named checks (true/false), figures, and `smoke.json`.

A failed check is recorded, the report is written, and `SmokeFailed` names the check, so the CLI
exits 1 with one line saying which outcome was wrong (and every earlier check stays readable).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pretrain.atomic import replaced_atomically
from pretrain.errors import TubeletError

log = logging.getLogger(__name__)

SMOKE_JSON = "smoke.json"


class SmokeFailed(TubeletError):
    """A smoke check did not hold; the message names it."""


@dataclass
class SmokeReport:
    out: Path
    checks: dict[str, bool] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)
    """Why a check failed, or a note on what a check compared."""
    info: dict[str, Any] = field(default_factory=dict)
    """What ran: device, precision, strategy, backbone, skipped checks."""

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        """Record `name`; a false one stops the run (the report is written by `run_smoke`)."""
        self.checks[name] = bool(ok)
        if detail:
            self.details[name] = detail
        log.info("smoke check %-28s %s %s", name, "ok" if ok else "FAILED", detail)
        if not ok:
            raise SmokeFailed(f"smoke check {name!r} failed: {detail or 'see smoke.json'}")

    def skip(self, name: str, reason: str) -> None:
        """A check that does not apply here (e.g. CUDA kernels on CPU): listed, not counted."""
        self.info.setdefault("skipped", {})[name] = reason

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Wall seconds of one smoke step into figures['step_seconds'][step]."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.figures.setdefault("step_seconds", {})[step] = round(time.perf_counter() - started, 2)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(self.checks.values())

    def write(self) -> Path:
        path = self.out / SMOKE_JSON
        self.out.mkdir(parents=True, exist_ok=True)
        body = {
            "passed": self.passed,
            "checks": self.checks,
            "figures": self.figures,
            "details": self.details,
            "info": self.info,
        }
        with replaced_atomically(path) as (tmp,):
            tmp.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
        return path
