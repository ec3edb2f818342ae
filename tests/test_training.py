"""The Lightning recipe: real training on small synthetic data, two stages, resume, reproducibility, DDP."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from i2m2.catalog import get_experiment
from i2m2.data.synthetic import SyntheticTask
from i2m2.experiment import StageConfig
from i2m2.models.methods import build_method
from i2m2.models.mlp import MLP
from i2m2.models.registry import create_fusion
from i2m2.orchestration import job as runner_module
from i2m2.orchestration.comparison import Comparison, RunOptions
from i2m2.runs.folder import RunFolder
from i2m2.runs.predictions import job_stem, load_predictions
from i2m2.training.fit import FitSettings, fit_and_test

DIM, K = 8, 4


def small_method(method: str):
    return build_method(
        method,
        ("m0", "m1"),
        unimodal=lambda m: MLP(DIM, [32], K),
        inter=lambda mods: create_fusion("late", dict.fromkeys(mods, DIM), K, hidden=32),
        num_classes=K,
    )


def splits(intra: float, inter: float, n_train: int = 600):
    return SyntheticTask(K, 2, DIM, intra=intra, inter=inter, noise=0.5, seed=3).splits(
        n_train, 200, 400, seed=0
    )


FAST = StageConfig(optimizer="adam", lr=1e-2, max_epochs=15, batch_size=100)


def test_inter_dependence_needs_inter_model():
    """Where only the joint code carries the label, I2M2 learns it and the intra model cannot."""
    data = splits(intra=0.0, inter=3.0)
    i2m2 = fit_and_test(small_method("i2m2"), data, FitSettings(FAST, seed=0))
    intra = fit_and_test(small_method("intra"), data, FitSettings(FAST, seed=0))
    assert i2m2.metrics["acc"] > 0.8
    assert intra.metrics["acc"] < 0.4  # chance is 0.25
    assert set(i2m2.metrics) >= {"acc", "balanced_acc", "auroc"}


def test_evaluation_runs_in_eval_mode_and_returns_best_weights():
    """BatchNorm/dropout must be in eval mode when testing: predictions must not depend on the batch."""
    data = splits(intra=1.5, inter=0.0)
    model = build_method(
        "unimodal:m0",
        ("m0", "m1"),
        unimodal=lambda m: torch.nn.Sequential(torch.nn.BatchNorm1d(DIM), MLP(DIM, [16], K, dropout=0.5)),
        inter=lambda mods: create_fusion("late", dict.fromkeys(mods, DIM), K),
        num_classes=K,
    )
    result = fit_and_test(model, data, FitSettings(FAST, seed=0))
    model.eval()
    inputs = data.test.inputs
    with torch.no_grad():
        full = model(inputs)
        single = torch.cat([model({m: x[i : i + 1] for m, x in inputs.items()}) for i in range(20)])
    assert torch.allclose(full[:20], single, atol=1e-5)
    stored = torch.from_numpy(result.predictions.log_probs)
    assert torch.allclose(stored, full, atol=2e-2)  # float16 storage


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
    # The resumed run's own time excludes the earlier jobs; job_wall_time_s counts all of them.
    assert again["config"]["job_wall_time_s"] > first["config"]["job_wall_time_s"] > 0


def test_prior_correction_is_recorded_and_normalized(tmp_path):
    results = run_synthetic(tmp_path / "run", methods=["i2m2"], prior_correction=True)
    assert results["config"]["prior_correction"] is True
    p = load_predictions(tmp_path / "run" / "predictions" / "inter-dominant__i2m2__seed0.npz")
    assert abs(float(torch.from_numpy(p.log_probs).exp().sum(1).mean()) - 1) < 1e-2


def test_ddp_two_processes_agree_with_one():
    """torchmetrics syncs across processes: 2-process DDP evaluation equals 1-process on the same weights."""
    data = splits(intra=1.0, inter=2.0, n_train=400)
    one = fit_and_test(small_method("i2m2"), data, FitSettings(FAST, seed=0, predict=False))
    ddp = {"accelerator": "cpu", "devices": 2, "strategy": "ddp_spawn"}
    frozen = StageConfig(optimizer="sgd", lr=1e-12, max_epochs=1, batch_size=100)
    model = small_method("i2m2")
    model.load_state_dict(one.state_dict)
    two = fit_and_test(model, data, FitSettings(frozen, seed=0, trainer=ddp, predict=False))
    for name in ("acc", "balanced_acc", "auroc"):
        assert two.metrics[name] == pytest.approx(one.metrics[name], abs=1e-6), name
    trained_ddp = fit_and_test(
        small_method("i2m2"), data, FitSettings(FAST, seed=0, trainer=ddp, predict=False)
    )
    assert abs(trained_ddp.metrics["acc"] - one.metrics["acc"]) < 0.08
