"""``i2m2 run mimic-*`` end to end through the command line, on a tiny ``im.pk``."""

from __future__ import annotations

import json

import numpy as np

from i2m2.cli import main
from i2m2.data.mimic import TASKS
from test_mimic_data import make_arrays, write_pickle

METHODS = ("unimodal:static", "unimodal:timeseries", "intra", "inter", "i2m2")


def test_run_produces_every_row_of_table_2(tmp_path, capsys):
    write_pickle(tmp_path / "data" / "im.pk", make_arrays(n=60))
    out = tmp_path / "run"
    argv = ["run", "mimic", "--data-dir", str(tmp_path / "data"), "--seeds", "1", "--max-epochs", "1"]
    assert main([*argv, "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    rows = {(row["group"], row["method"]): row["metrics"] for row in results["rows"]}
    assert set(rows) == {(group, method) for group in TASKS for method in METHODS}
    for (group, _), metrics in rows.items():
        assert {"acc", "auroc", "balanced_acc"} <= set(metrics)
        assert ("auprc" in metrics) == (group != "mortality")  # the binary ICD-9 tasks also report AUPRC
    assert results["config"]["num_classes"] == TASKS
    for group, classes in TASKS.items():
        predictions = np.load(out / "predictions" / f"{group}__i2m2__seed0.npz")
        assert predictions["log_probs"].shape == (6, classes)
    assert "icd9_460_519" in capsys.readouterr().out


def test_one_task_alone(tmp_path):
    write_pickle(tmp_path / "im.pk", make_arrays(n=40))
    argv = ["run", "mimic", "--tasks", "icd9_140_239", "--data-dir", str(tmp_path / "im.pk"), "--seeds", "1"]
    assert main([*argv, "--max-epochs", "1", "--methods", "inter", "--out", str(tmp_path / "run")]) == 0
    rows = json.loads((tmp_path / "run" / "results.json").read_text())["rows"]
    assert [(row["group"], row["method"]) for row in rows] == [("icd9_140_239", "inter")]


def test_malicious_pickle_is_one_line_and_exit_2(tmp_path, capsys):
    class Payload:
        def __reduce__(self):
            return exec, ("open('pwned', 'w').close()",)

    write_pickle(tmp_path / "im.pk", {**make_arrays(n=20), "x": Payload()})
    code = main(
        [
            "run",
            "mimic",
            "--tasks",
            "mortality",
            "--data-dir",
            str(tmp_path / "im.pk"),
            "--out",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "refusing to load 'builtins.exec'" in err and "im.pk" in err
    assert not (tmp_path / "pwned").exists()
