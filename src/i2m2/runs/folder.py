"""A run folder: where ``i2m2 run`` keeps everything, and the only code that knows its layout.

::

    run.json                                  what was run: experiment, options, resolved recipe
    results.json  results.csv  results.md     the tables (results.json is the stable contract)
    results.png                               the chart
    jobs/<group>__<method>__seed<k>.json      one finished job's record (test metrics, epochs, wall time)
    checkpoints/<stem>.ckpt                   its best epoch (Lightning's ModelCheckpoint; state_dict and
                                              plain hyperparameters, loadable with weights_only=True)
    logs/<stem>/metrics.csv                   its learning curve (Lightning's CSVLogger)
    predictions/<stem>.npz                    its per-example test predictions
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from i2m2.atomic import atomic_write_text
from i2m2.errors import DataError, UserError
from i2m2.runs.plots import bar_chart
from i2m2.runs.predictions import Predictions, job_stem, predictions_path, save_predictions
from i2m2.runs.results import write_results

MODEL_PREFIX = "model."  # the LightningModule holds the I2M2 model as ``self.model``


class RunFolder:
    """Reads and writes one run folder (see the module docstring for the layout).

    Args:
        path: the folder.
        resume: continue a run already there instead of refusing to write into it.
    """

    def __init__(self, path: Path, resume: bool = False) -> None:
        self.path = Path(path)
        self.resume = resume

    @property
    def jobs(self) -> Path:
        return self.path / "jobs"

    def prepare(self) -> None:
        """Create the folder; refuse one that already holds a run unless resuming; check it is writable."""
        if str(self.path) == "":
            raise UserError("--out: expected a folder path, got ''")
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--out {self.path}: exists and is not a folder")
        if self.jobs.is_dir() and any(self.jobs.iterdir()) and not self.resume:
            raise UserError(
                f"--out {self.path}: already holds a run; pass --resume to continue it, "
                "or choose another folder"
            )
        try:
            self.jobs.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".write-test-{os.getpid()}"  # one per process: DDP ranks check at once
            probe.write_text("")
            probe.unlink()
        except OSError as err:
            raise UserError(f"--out {self.path}: not writable ({err.strerror or err})") from err

    def stem(self, group: str, method: str, seed: int) -> str:
        return job_stem(group, method, seed)

    def checkpoint(self, stem: str) -> Path:
        return self.path / "checkpoints" / f"{stem}.ckpt"

    def log_dir(self, stem: str) -> Path:
        return self.path / "logs" / stem

    def finished_job(self, stem: str) -> dict[str, Any] | None:
        """The record of a job finished earlier (with its checkpoint), or ``None``."""
        record = self.jobs / f"{stem}.json"
        if not (record.is_file() and self.checkpoint(stem).is_file()):
            return None
        try:
            data = json.loads(record.read_text())
        except (OSError, ValueError) as err:
            raise DataError(
                f"{record}: not a readable job record ({err}); delete it to rerun the job"
            ) from err
        if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
            raise DataError(f"{record}: expected a job record with 'metrics'; delete it to rerun the job")
        return data

    def save_job(self, stem: str, record: dict[str, Any]) -> None:
        atomic_write_text(self.jobs / f"{stem}.json", json.dumps(record, indent=2) + "\n")

    def load_weights(self, stem: str) -> dict[str, torch.Tensor]:
        """A finished job's model weights: the I2M2 model's state_dict, without the module's prefix."""
        path = self.checkpoint(stem)
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            state = checkpoint["state_dict"]
        except Exception as err:  # truncated, foreign or not a checkpoint at all
            raise DataError(
                f"{path}: not a readable i2m2 checkpoint ({type(err).__name__}); delete it and its job "
                f"record {self.jobs / (stem + '.json')} to rerun the job"
            ) from err
        return {k.removeprefix(MODEL_PREFIX): v for k, v in state.items() if k.startswith(MODEL_PREFIX)}

    def save_predictions(self, group: str, method: str, seed: int, predictions: Predictions) -> None:
        save_predictions(predictions_path(self.path, group, method, seed), predictions)

    def write_run_record(self, record: dict[str, Any]) -> None:
        atomic_write_text(self.path / "run.json", json.dumps(record, indent=2, default=str) + "\n")

    def write_results(
        self,
        experiment: str,
        rows: list[dict[str, Any]],
        config: dict[str, Any],
        monitor: str,
        title: str,
        levels: dict[str, dict[str, float]] | None = None,
    ) -> dict[str, Any]:
        """results.json/.csv/.md and the chart (with chance and majority lines when ``levels`` has them,
        per group); returns results.json's content."""
        results = write_results(self.path, experiment, rows, config)
        bar_chart(rows, self.path / "results.png", monitor, title, levels)
        return results
