"""The comparison driver: real training on synthetic data, two stages, resume, the Python API."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from i2m2 import Experiment, Recipe, run_experiment
from i2m2.catalog import get_experiment
from i2m2.data.synthetic import SyntheticTask
from i2m2.experiment import StageConfig
from i2m2.orchestration import job as runner_module
from i2m2.orchestration.comparison import Comparison, RunOptions
from i2m2.runs.folder import RunFolder
from i2m2.runs.predictions import job_stem, load_predictions

pytestmark = pytest.mark.slow  # every test runs whole comparisons, trained for real


def accuracy(rows: list[dict], method: str) -> float:
    return next(r for r in rows if r["method"] == method)["metrics"]["acc"]["mean"]


def test_same_seed_same_metrics(tmp_path):
    a = run_synthetic(tmp_path / "a", methods=["i2m2"])
    b = run_synthetic(tmp_path / "b", methods=["i2m2"])
    # Every metric and the epochs each job ran agree exactly; only the wall time may differ.
    assert [(r["metrics"], r["epochs"]) for r in a["rows"]] == [
        (r["metrics"], r["epochs"]) for r in b["rows"]
    ]


def run_synthetic(out: Path, **kwargs) -> dict:
    experiment = get_experiment("synthetic")
    experiment.groups = ("inter-dominant",)
    kwargs.setdefault("seeds", 1)
    kwargs.setdefault("max_epochs", 3)
    folder = RunFolder(out, resume=kwargs.get("resume", False))
    return Comparison(experiment, folder, RunOptions(**kwargs), log=lambda line: None).run()


def test_run_writes_every_file(tmp_path):
    results = run_synthetic(tmp_path / "run")
    out = tmp_path / "run"
    methods = [r["method"] for r in results["rows"]]
    assert methods == ["unimodal:m0", "unimodal:m1", "intra", "inter", "i2m2"]
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["experiment"] == "synthetic"
    row = on_disk["rows"][0]
    assert row["group"] == "inter-dominant"
    assert set(row["metrics"]["acc"]) == {"mean", "std", "per_seed"}
    assert {"torch", "lightning"} <= set(on_disk["versions"])
    assert on_disk["config"]["seeds"] == [0]
    assert "| i2m2 |" in (out / "results.md").read_text()
    # The cost of every job: its wall time and the epochs it ran (max_epochs=3 caps them).
    assert row["wall_time_s"]["per_seed"][0] > 0 and 1 <= row["epochs"]["per_seed"][0] <= 3
    record = json.loads((out / "jobs" / "inter-dominant__unimodal-m0__seed0.json").read_text())
    assert record["wall_time_s"] == row["wall_time_s"]["per_seed"][0] and record["epochs"] >= 1
    assert "| unimodal:m0 | inter-dominant |" in (out / "results.md").read_text().split("cost per job")[1]
    assert (out / "results.csv").read_text().startswith("method,group,metric,mean,std")
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    predictions = load_predictions(out / "predictions" / "inter-dominant__i2m2__seed0.npz")
    assert set(predictions.experts) == {"m0", "m1", "inter"}
    assert set(predictions.withheld) == {"m0", "m1"}
    assert predictions.log_probs.shape == (len(predictions.labels), 4)
    checkpoint = torch.load(out / "checkpoints" / "inter-dominant__i2m2__seed0.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["job"]["init_from"] == ["unimodal:m0", "unimodal:m1", "inter"]
    curve = (out / "logs" / "inter-dominant__i2m2__seed0" / "metrics.csv").read_text().splitlines()
    assert curve[0].startswith("epoch,step") and "val/acc" in curve[0] and len(curve) >= 3
    assert not list(out.rglob("*.tmp"))


def test_stage_two_starts_from_stage_one_weights(tmp_path, monkeypatch):
    """The product is fine-tuned from the experts trained alone (not from random init)."""
    seen: dict[str, dict[str, torch.Tensor]] = {}
    real_fit = runner_module.fit_and_test

    def recording_fit(model, *args, **kwargs):
        seen[",".join(model.experts)] = {k: v.clone() for k, v in model.state_dict().items()}
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(runner_module, "fit_and_test", recording_fit)
    run_synthetic(tmp_path / "run", methods=["i2m2"])
    start = seen["m0,m1,inter"]
    for source in ("unimodal:m0", "unimodal:m1", "inter"):
        stem = job_stem("inter-dominant", source, 0)
        trained = RunFolder(tmp_path / "run").load_weights(stem)
        assert trained
        for key, value in trained.items():
            assert torch.equal(start[key], value), key


def test_from_scratch_does_not_load(tmp_path, monkeypatch):
    calls: list[str] = []
    real_fit = runner_module.fit_and_test
    monkeypatch.setattr(
        runner_module,
        "fit_and_test",
        lambda model, *a, **k: calls.append(",".join(model.experts)) or real_fit(model, *a, **k),
    )
    run_synthetic(tmp_path / "run", methods=["i2m2"], from_scratch=True)
    assert calls == ["m0,m1,inter"]  # no stage-1 jobs


def test_resume_skips_finished_jobs(tmp_path, monkeypatch):
    first = run_synthetic(tmp_path / "run", methods=["unimodal:m0", "intra"])
    calls: list[str] = []
    real_fit = runner_module.fit_and_test
    monkeypatch.setattr(
        runner_module,
        "fit_and_test",
        lambda model, *a, **k: calls.append(",".join(model.experts)) or real_fit(model, *a, **k),
    )
    with pytest.raises(ValueError, match="--resume"):
        run_synthetic(tmp_path / "run", methods=["unimodal:m0", "intra"])
    # The curve an interrupted inter job left behind is replaced, not appended to (and not warned about).
    stale = tmp_path / "run" / "logs" / "inter-dominant__inter__seed0"
    stale.mkdir(parents=True)
    (stale / "metrics.csv").write_text("epoch,step,val/acc\n0,9,0.99\n")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*exists and is not empty.*")
        again = run_synthetic(tmp_path / "run", methods=["unimodal:m0", "intra", "inter"], resume=True)
    assert calls == ["inter"]
    assert "0.99" not in (stale / "metrics.csv").read_text()
    assert (tmp_path / "run" / "logs" / "inter-dominant__unimodal-m0__seed0" / "metrics.csv").is_file()
    assert again["rows"][0] == first["rows"][0]
    # The resumed run's own time excludes the earlier jobs; job_wall_time_s counts all of them (the sum of
    # every job record's time, to 0.1 s: a fast inter job may not move it by a tenth, hence >=).
    records = [json.loads(f.read_text()) for f in (tmp_path / "run" / "jobs").glob("*.json")]
    assert len(records) == 4  # unimodal:m0, unimodal:m1 (intra's expert), intra, inter
    assert again["config"]["job_wall_time_s"] == round(sum(r["wall_time_s"] for r in records), 1)
    assert again["config"]["job_wall_time_s"] >= first["config"]["job_wall_time_s"] > 0


def test_prior_correction_is_recorded_and_normalized(tmp_path):
    results = run_synthetic(tmp_path / "run", methods=["i2m2"], prior_correction=True)
    assert results["config"]["prior_correction"] is True
    p = load_predictions(tmp_path / "run" / "predictions" / "inter-dominant__i2m2__seed0.npz")
    assert abs(float(torch.from_numpy(p.log_probs).exp().sum(1).mean()) - 1) < 1e-2


def test_python_api_runs_the_whole_comparison(tmp_path):
    def load(group, data_dir, seed):
        return SyntheticTask(3, 3, 6, intra=1.2, inter=0.0, noise=1.0, seed=0).splits(
            600, 200, 600, seed=seed
        )

    from i2m2 import MLP, create_fusion

    experiment = Experiment(
        name="api",
        description="three views, each informative alone",
        modalities=("m0", "m1", "m2"),
        num_classes=3,
        load_data=load,
        build_unimodal=lambda m, classes, group: MLP(6, [16], classes),
        build_inter={
            "lf": lambda mods, classes, group: create_fusion(
                "late", dict.fromkeys(mods, 6), classes, hidden=16
            )
        },
        recipe=Recipe(pretrain=StageConfig(lr=1e-2, max_epochs=8, batch_size=100)),
    )
    rows = run_experiment(
        experiment, tmp_path / "run", seeds=2, methods=["unimodal:m0", "intra", "i2m2"], epoch_progress=False
    )
    assert [r["method"] for r in rows] == ["unimodal:m0", "intra", "i2m2"]
    assert all(len(r["metrics"]["acc"]["per_seed"]) == 2 for r in rows)
    # Each view alone carries the label: multiplying three of them beats one.
    assert accuracy(rows, "intra") > accuracy(rows, "unimodal:m0") + 0.05
    assert json.loads((tmp_path / "run" / "results.json").read_text())["rows"] == rows
