"""tune_experiment on a tiny experiment: grid search picks the learning rate that learns, the test split is
never read, and a stopped tune continues to the same best trial as one that ran through."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from i2m2.catalog import ExperimentRef
from i2m2.errors import UserError
from i2m2.orchestration import executors
from i2m2.tuning import tune_experiment
from i2m2.tuning.study import INTERRUPTED, open_storage, optuna_module, storage_url
from tests.tuning.tiny import tiny

TINY = str(Path(__file__).with_name("tiny.py")) + ":tiny"
FIXED = {"pretrain.weight_decay": 0, "finetune.weight_decay": 0}


def trials(out: Path) -> list[dict[str, str]]:
    with open(out / "trials.csv") as f:
        return list(csv.DictReader(f))


def test_grid_search_picks_the_learning_rate_that_learns_over_one_that_diverges(tmp_path):
    space = FIXED | {"pretrain.lr": "1e4,0.1"}
    result = tune_experiment(tiny(), tmp_path, space=space, trials=5, methods=["unimodal:m0"], pruner="none")
    best = result.best["unimodal:m0"]
    assert best.params == {"lr": 0.1, "weight_decay": 0.0}
    assert best.finished == 2  # the grid has two points: both tried, once
    assert best.value > 0.5  # well above chance (1/3)
    rows = {float(r["lr"]): r for r in trials(tmp_path)}
    assert rows[1e4]["state"] == "fail" and "diverged" in rows[1e4]["error"]
    assert rows[0.1]["state"] == "complete"
    assert (tmp_path / "tuning.png").stat().st_size > 0


def test_tuning_never_reads_the_test_split(tmp_path):
    space = FIXED | {"pretrain.lr": "0.03,0.3", "finetune.lr": "0.01,0.1"}
    kwargs = {"space": space, "trials": 2, "methods": ["intra"], "pruner": "none"}
    clean = tune_experiment(tiny(), tmp_path / "clean", **kwargs)
    nan = tune_experiment(tiny(nan_test=True), tmp_path / "nan", **kwargs)  # any read of it fails
    assert set(clean.best) == {"unimodal:m0", "unimodal:m1", "intra"}
    assert {m: (b.params, b.value) for m, b in clean.best.items()} == {
        m: (b.params, b.value) for m, b in nan.best.items()
    }
    values = [[(r["method"], r["lr"], r["value"]) for r in trials(tmp_path / d)] for d in ("clean", "nan")]
    assert values[0] == values[1]


@pytest.mark.parametrize(("sampler", "lr"), [("grid", "0.003,0.01,0.03,0.1,0.3"), ("tpe", "0.003:0.3:log")])
def test_a_stopped_tune_continues_to_the_same_best_trial_as_one_that_ran_through(
    tmp_path, monkeypatch, sampler, lr
):
    space = FIXED | {"pretrain.lr": lr}
    kwargs = {"space": space, "trials": 5, "methods": ["unimodal:m0"], "sampler": sampler}
    through = tune_experiment(tiny(), tmp_path / "through", **kwargs)

    real, calls = executors.run_job, []

    def stopped_at_the_third(spec):
        calls.append(spec)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(spec)

    monkeypatch.setattr(executors, "run_job", stopped_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        tune_experiment(tiny(), tmp_path / "stopped", **kwargs)
    states = (
        [r["state"] for r in trials(tmp_path / "stopped")]
        if (tmp_path / "stopped/trials.csv").exists()
        else []
    )
    assert states == []  # nothing finished a method yet; the study is the record
    optuna = optuna_module()
    storage = open_storage(storage_url(tmp_path / "stopped", None), own=True)
    study = optuna.load_study(study_name="tiny/unimodal:m0", storage=storage)
    assert [bool(t.user_attrs.get(INTERRUPTED)) for t in study.trials] == [False, False, True]
    monkeypatch.setattr(executors, "run_job", real)

    resumed = tune_experiment(tiny(), tmp_path / "stopped", **kwargs)
    a, b = through.best["unimodal:m0"], resumed.best["unimodal:m0"]
    assert (a.params, a.value, a.finished) == (b.params, b.value, b.finished) == (a.params, a.value, 5)
    done = {(r["lr"], r["value"]) for r in trials(tmp_path / "stopped") if r["state"] == "complete"}
    assert done == {(r["lr"], r["value"]) for r in trials(tmp_path / "through")}


def test_more_trials_continue_the_same_study_and_a_reference_runs_in_worker_processes(tmp_path):
    space = FIXED | {"pretrain.lr": "0.01,0.1,0.3"}
    ref = ExperimentRef.of(TINY)
    kwargs = {"space": space, "methods": ["unimodal:m0"], "executor": "processes", "workers": 1}
    first = tune_experiment(ref, tmp_path, trials=2, **kwargs)
    assert first.best["unimodal:m0"].finished == 2
    second = tune_experiment(ref, tmp_path, trials=3, **kwargs)
    assert second.best["unimodal:m0"].finished == 3
    assert sorted(float(r["lr"]) for r in trials(tmp_path)) == [0.01, 0.1, 0.3]


def test_zero_trials_and_an_experiment_object_on_worker_processes_are_refused(tmp_path):
    with pytest.raises(UserError, match=r"--trials: expected an integer >= 1, got 0"):
        tune_experiment(tiny(), tmp_path / "a", trials=0)
    with pytest.raises(UserError, match="--executor processes: jobs run in other processes"):
        tune_experiment(tiny(), tmp_path / "b", trials=1, executor="processes")
