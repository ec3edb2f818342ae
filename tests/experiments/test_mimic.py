"""The ``mimic`` experiments: the paper's models, and ``i2m2 run mimic-*`` end to end on a tiny ``im.pk``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from i2m2.catalog import get_experiment
from i2m2.cli import main
from i2m2.data.mimic import TASKS
from i2m2.experiments.mimic import mimic_late_fusion, mimic_unimodal_classifier
from i2m2.models.methods import build_method
from tests.helpers.mimic import make_arrays, write_pickle
from tests.helpers.models import check_trains

METHODS = ("unimodal:static", "unimodal:timeseries", "intra", "inter", "i2m2")


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.parametrize(
    ("name", "groups"),
    [
        (None, ("mortality", "icd9_140_239", "icd9_460_519")),
        (["mortality"], ("mortality",)),
        (["icd9_460_519"], ("icd9_460_519",)),
    ],
)
def test_experiments_build_every_method(tmp_path, name, groups):
    experiment = get_experiment("mimic", tasks=name)
    assert experiment.groups == groups and experiment.modalities == ("static", "timeseries")
    stage = experiment.recipe.stage1("static")
    assert (stage.optimizer, stage.lr, stage.batch_size, stage.max_epochs) == ("rmsprop", 1e-3, 40, 20)
    write_pickle(tmp_path / "im.pk", make_arrays())
    for group in groups:
        classes = experiment.classes(group)
        assert classes == (6 if group == "mortality" else 2)
        splits = experiment.load_data(group, tmp_path, 3)
        assert splits.num_classes == classes
        assert torch.equal(splits.test.labels, experiment.load_data(group, tmp_path, 4).test.labels)  # fixed
        batch = {m: splits.train.inputs[m][:4] for m in experiment.modalities}
        for method in ("unimodal:static", "unimodal:timeseries", "intra", "inter", "i2m2"):
            model = build_method(
                method,
                experiment.modalities,
                unimodal=lambda m, g=group, c=classes: experiment.build_unimodal(m, c, g),
                inter=lambda mods, g=group, c=classes: experiment.build_inter["lf"](mods, c, g),
                num_classes=classes,
            )
            assert model(batch).shape == (4, classes)


@pytest.mark.parametrize("classes", [6, 2])
def test_mimic_models(classes):
    static, series = torch.randn(5, 5), torch.randn(5, 24, 12)
    check_trains(mimic_unimodal_classifier("static", classes), static, classes)
    check_trains(mimic_unimodal_classifier("timeseries", classes), series, classes)
    lf = mimic_late_fusion(("static", "timeseries"), classes)
    assert lf.head[1].in_features == 730  # 10 static + 24 x 30 GRU states, as MultiBench
    assert lf.head[1].out_features == 40
    check_trains(lf, {"static": static, "timeseries": series}, classes)


def test_mimic_authors_code_time_series_expert_reads_each_step_through_a_linear():
    from i2m2.experiments.mimic import mimic_unimodal_classifier

    paper = mimic_unimodal_classifier("timeseries", 2)
    authors = mimic_unimodal_classifier("timeseries", 2, step_linear=True)
    x = torch.randn(4, 24, 12)
    assert paper(x).shape == authors(x).shape == (4, 2)
    assert paper[1][1].in_features == 720 and authors[1][1].in_features == 360  # 24 steps x 15
    assert mimic_unimodal_classifier("static", 2, step_linear=True)[1][1].in_features == 10
