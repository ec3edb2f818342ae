"""The median pruner's feed: the callback reports each epoch's validation metric and stops a trial that
trails the median, after a pickle round trip (how it reaches a worker process)."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import pytest
import torch

from i2m2.tuning.pruning import STARTUP_TRIALS, WARMUP_EPOCHS, ReportToTrial
from i2m2.tuning.study import optuna_module


def epoch(value: float, number: int) -> SimpleNamespace:
    return SimpleNamespace(
        sanity_checking=False,
        global_rank=0,
        current_epoch=number,
        callback_metrics={"val/acc": torch.tensor(value)},
    )


def test_a_trial_below_the_median_is_pruned_after_the_warmup_epochs(tmp_path):
    optuna = optuna_module()
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=url, study_name="s", direction="maximize")
    for _ in range(STARTUP_TRIALS):
        trial = study.ask()
        for step in range(5):
            trial.report(0.9, step)
        study.tell(trial, 0.9)
    trial = study.ask()
    callback = pickle.loads(pickle.dumps(ReportToTrial(url, "s", trial._trial_id, "acc")))
    for number in range(WARMUP_EPOCHS):  # reported, never pruned during the warmup
        callback.on_validation_end(epoch(0.1, number), None)
    with pytest.raises(optuna.TrialPruned):
        callback.on_validation_end(epoch(0.1, WARMUP_EPOCHS), None)
    reported = study.trials[-1].intermediate_values
    assert reported == pytest.approx({0: 0.1, 1: 0.1, 2: 0.1})


def test_a_trial_at_the_median_goes_on(tmp_path):
    optuna = optuna_module()
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=url, study_name="s", direction="maximize")
    for _ in range(STARTUP_TRIALS):
        trial = study.ask()
        trial.report(0.5, 3)
        study.tell(trial, 0.5)
    trial = study.ask()
    ReportToTrial(url, "s", trial._trial_id, "acc").on_validation_end(epoch(0.6, 3), None)
    assert study.trials[-1].intermediate_values == pytest.approx({3: 0.6})
