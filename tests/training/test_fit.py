"""Fitting one model with the Lightning recipe: real training on synthetic data, eval mode, DDP."""

from __future__ import annotations

import pytest
import torch

from i2m2.data.synthetic import SyntheticTask
from i2m2.experiment import StageConfig
from i2m2.models.methods import build_method
from i2m2.models.mlp import MLP
from i2m2.models.registry import create_fusion
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


@pytest.mark.slow
def test_inter_dependence_needs_inter_model():
    """Where only the joint code carries the label, I2M2 learns it and the intra model cannot."""
    data = splits(intra=0.0, inter=3.0)
    i2m2 = fit_and_test(small_method("i2m2"), data, FitSettings(FAST, seed=0))
    intra = fit_and_test(small_method("intra"), data, FitSettings(FAST, seed=0))
    assert i2m2.metrics["acc"] > 0.8
    assert intra.metrics["acc"] < 0.4  # chance is 0.25
    assert set(i2m2.metrics) >= {"acc", "balanced_acc", "auroc"}


@pytest.mark.slow
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


@pytest.mark.slow
def test_ddp_two_processes_agree_with_one():
    """torchmetrics syncs across processes: 2-process DDP evaluation equals 1-process on the same weights,
    and DDP training learns as one process does. One DDP fit only: torch's gloo backend now and then aborts
    a spawned process in its teardown, and every ``ddp_spawn`` fit is another draw of that."""
    data = splits(intra=1.0, inter=2.0, n_train=400)
    one = fit_and_test(small_method("i2m2"), data, FitSettings(FAST, seed=0, predict=False))
    ddp = {"accelerator": "cpu", "devices": 2, "strategy": "ddp_spawn"}
    two = fit_and_test(small_method("i2m2"), data, FitSettings(FAST, seed=0, trainer=ddp, predict=False))
    assert abs(two.metrics["acc"] - one.metrics["acc"]) < 0.08  # DDP training learns
    # The DDP-tested weights, tested again in one process (an SGD step of 1e-12 leaves them as they are).
    frozen = StageConfig(optimizer="sgd", lr=1e-12, max_epochs=1, batch_size=100)
    model = small_method("i2m2")
    model.load_state_dict(two.state_dict)
    alone = fit_and_test(model, data, FitSettings(frozen, seed=0, predict=False))
    for name in ("acc", "balanced_acc", "auroc"):
        assert two.metrics[name] == pytest.approx(alone.metrics[name], abs=1e-6), name
