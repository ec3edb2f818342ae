"""Where a job's time goes: seconds in training, validation and test, recorded in each job's record."""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl


class PhaseTimer(pl.Callback):
    """Wall seconds per phase of one job: ``train`` (fit minus its validation), ``val`` and ``test``.

    Validation runs inside ``fit``; ``test`` includes the per-example predictions, taken in the same pass.
    """

    def __init__(self) -> None:
        self.seconds = {"fit": 0.0, "val": 0.0, "test": 0.0}
        self._started: dict[str, float] = {}

    def _start(self, phase: str) -> None:
        self._started[phase] = time.perf_counter()

    def _stop(self, phase: str) -> None:
        if phase in self._started:
            self.seconds[phase] += time.perf_counter() - self._started.pop(phase)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start("fit")

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop("fit")

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start("val")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop("val")

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start("test")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop("test")

    def phases(self) -> dict[str, float]:
        s = self.seconds
        return {
            "train": round(s["fit"] - s["val"], 3),
            "val": round(s["val"], 3),
            "test": round(s["test"], 3),
        }

    def state_dict(self) -> dict[str, Any]:  # nothing to restore: timings belong to one process's job
        return {}
