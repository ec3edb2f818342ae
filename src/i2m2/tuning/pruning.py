"""The median pruner's feed: a Lightning callback reporting the validation metric each epoch to its trial.

The callback holds plain values only (storage URL, study name, trial id), so it travels with a job to a
worker process or machine and reopens the study there by name: pruning works wherever the job runs and can
reach the storage (DIR's SQLite file on this machine; a shared ``--storage`` server elsewhere). When the
trial should stop it raises :class:`optuna.TrialPruned`, which ends the job and reaches the tuner.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl

from i2m2.tuning.study import optuna_module

WARMUP_EPOCHS = 2  # epochs before a trial may be pruned (the first epochs of every method are noisy)
STARTUP_TRIALS = 5  # finished trials before the median means anything


def median_pruner() -> Any:
    optuna = optuna_module()
    return optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS, n_warmup_steps=WARMUP_EPOCHS)


class ReportToTrial(pl.Callback):
    """Report ``val/<monitor>`` after each validation epoch; stop the job when the pruner says so.

    Args:
        storage: the study's storage URL.
        study: the study's name.
        trial_id: the trial's storage id.
        monitor: the metric (as logged, without ``val/``).
        offset: added to the epoch to form the step, so the jobs of one trial (groups, seeds) report at
            distinct steps, the same in every trial.
    """

    def __init__(self, storage: str, study: str, trial_id: int, monitor: str, offset: int = 0) -> None:
        self.storage, self.study, self.trial_id = storage, study, trial_id
        self.monitor, self.offset = monitor, offset
        self._trial: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_trial"} | {"_trial": None}

    def _open(self) -> Any:
        if self._trial is None:
            optuna = optuna_module()
            study = optuna.load_study(study_name=self.study, storage=self.storage, pruner=median_pruner())
            self._trial = optuna.trial.Trial(study, self.trial_id)
        return self._trial

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.global_rank != 0:
            return
        value = trainer.callback_metrics.get(f"val/{self.monitor}")
        if value is None:
            return
        trial = self._open()
        score = float(value)
        if score == score:  # Optuna refuses NaN; a NaN epoch is simply not reported
            trial.report(score, self.offset + trainer.current_epoch)
        if trial.should_prune():
            optuna = optuna_module()
            raise optuna.TrialPruned(f"pruned at epoch {trainer.current_epoch + 1}")
