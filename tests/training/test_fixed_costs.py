"""A job's fixed costs are cut without changing what it computes (issue "Small jobs at the floor").

The best epoch kept in memory and its checkpoint written once, the curve written once, and evaluation of
in-memory data in large batches must give the numbers, weights, predictions and files of Lightning's own
``ModelCheckpoint`` and ``CSVLogger`` writing on every improvement and epoch, with evaluation at the training
batch size: on CPU, bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torchmetrics import MeanMetric, MetricCollection

from i2m2.data.synthetic import SyntheticTask
from i2m2.experiment import StageConfig
from i2m2.metrics import classification_metrics
from i2m2.models.methods import build_method
from i2m2.models.mlp import MLP
from i2m2.models.registry import create_fusion
from i2m2.training import fit
from i2m2.training.fit import FitResult, FitSettings, evaluation_batch_size, fit_and_test
from i2m2.training.lightning_module import counts_or_lists

DIM, K = 8, 4
STAGE = StageConfig(optimizer="adam", lr=1e-2, max_epochs=6, batch_size=64, patience=2)


def model(method: str = "i2m2", batchnorm: bool = False):
    def unimodal(m: str) -> torch.nn.Module:
        mlp = MLP(DIM, [16], K, dropout=0.2)
        return torch.nn.Sequential(torch.nn.BatchNorm1d(DIM), mlp) if batchnorm else mlp

    torch.manual_seed(0)
    return build_method(
        method,
        ("m0", "m1"),
        unimodal=unimodal,
        inter=lambda mods: create_fusion("late", dict.fromkeys(mods, DIM), K, hidden=16),
        num_classes=K,
    )


def data():
    task = SyntheticTask(K, 2, DIM, intra=1.0, inter=2.0, noise=0.5, seed=3)
    return task.splits(300, 230, 330, seed=0)  # evaluation sets that do not split evenly into batches


def as_before(monkeypatch, tmp_path: Path) -> dict:
    """Settings that make a job run as it did before these changes: a user's CSVLogger (so the best
    checkpoint is written by ModelCheckpoint on every improvement, and a curve by Lightning's own logger
    after every epoch) and evaluation at the training batch size."""
    monkeypatch.setattr(fit, "evaluation_batch_size", lambda evaluated, batch_size, *rest: batch_size)
    return {"logger": CSVLogger(tmp_path / "lightning", name="curve", version=""), "accelerator": "cpu"}


def assert_same(a: FitResult, b: FitResult) -> None:
    assert a.metrics == b.metrics
    assert a.epochs == b.epochs
    assert a.curve == b.curve and a.curve.count("\n") > a.epochs
    assert a.state_dict.keys() == b.state_dict.keys()
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert a.predictions is not None and b.predictions is not None
    for name in ("labels", "log_probs"):
        assert (getattr(a.predictions, name) == getattr(b.predictions, name)).all()
    assert all((a.predictions.experts[n] == b.predictions.experts[n]).all() for n in a.predictions.experts)
    assert all((a.predictions.withheld[m] == b.predictions.withheld[m]).all() for m in a.predictions.withheld)


@pytest.mark.parametrize("batchnorm", [False, True])
def test_a_job_computes_what_it_did_when_writing_every_epoch(tmp_path, monkeypatch, batchnorm):
    splits = data()
    fast = fit_and_test(
        model(batchnorm=batchnorm), splits, FitSettings(STAGE, seed=1, scratch=tmp_path / "fast")
    )
    with monkeypatch.context() as patched:
        trainer = as_before(patched, tmp_path)
        before = fit_and_test(
            model(batchnorm=batchnorm),
            splits,
            FitSettings(STAGE, seed=1, scratch=tmp_path / "before", trainer=trainer),
        )
    assert_same(fast, before)
    # the same files in the scratch folder: the curve written once is Lightning's, written every epoch
    for name in ("curve/metrics.csv", "curve/hparams.yaml"):
        assert (tmp_path / "fast" / name).read_text() == (tmp_path / "lightning" / name).read_text(), name
    assert (tmp_path / "lightning/curve/metrics.csv").read_text() == fast.curve
    # the best checkpoint, written once at the end, holds the best epoch's weights: those Lightning's
    # ModelCheckpoint wrote at that epoch, and those the job returns and tested
    once = torch.load(tmp_path / "fast/best/best.ckpt", weights_only=False)
    every = torch.load(tmp_path / "before/best/best.ckpt", weights_only=False)
    assert once["epoch"] == every["epoch"] and once["global_step"] == every["global_step"]
    assert once["state_dict"].keys() == every["state_dict"].keys()
    assert all(torch.equal(once["state_dict"][k], every["state_dict"][k]) for k in every["state_dict"])
    for key, value in fast.state_dict.items():
        assert torch.equal(once["state_dict"][f"model.{key}"], value), key


def test_the_best_epoch_is_the_one_returned_and_tested(tmp_path):
    """Weights of a later, worse epoch never leak into the result: the returned weights give the best
    epoch's validation score again."""
    splits = data()
    stage = StageConfig(
        optimizer="adam", lr=5e-2, max_epochs=8, batch_size=64
    )  # noisy: a late epoch is worse
    result = fit_and_test(model("unimodal:m0"), splits, FitSettings(stage, seed=0, monitor="loss"))
    header, *rows = [line.split(",") for line in result.curve.strip().splitlines()]
    column = header.index("val/loss")
    losses = [float(r[column]) for r in rows if r[column]]
    best = model("unimodal:m0")
    best.load_state_dict(result.state_dict)
    best.eval()
    with torch.no_grad():
        log_probs = best(splits.val.inputs)
    assert losses[-1] > min(losses)  # the last epoch is not the best: restoring the best one matters
    # the weights' validation loss is the curve's lowest (evaluated as one batch here: close, not bitwise)
    loss = float(torch.nn.functional.nll_loss(log_probs, splits.val.labels))
    assert loss == pytest.approx(min(losses), rel=1e-5)


def test_evaluation_batches_cover_whole_training_batches():
    splits = data()
    small = model()
    size = evaluation_batch_size([splits.val, splits.test], 64, small, "running")
    assert size % 64 == 0 and size >= 330  # every evaluation set in one batch
    assert evaluation_batch_size([splits.val], 64, small, "batch") == 64  # batch statistics: unchanged
    assert evaluation_batch_size([splits.val], 64, small, "running", world_size=2) == 64
    big = torch.nn.Linear(1100, 1000)  # over a million parameters
    assert evaluation_batch_size([splits.val], 64, big, "running") == 64
    assert evaluation_batch_size([list(range(10))], 64, small, "running") == 64  # not in memory
    # inputs of 2^20 values per example: one training batch's worth per evaluation batch
    wide = type(splits.val)({"m0": torch.zeros(200, 1 << 20, dtype=torch.uint8)}, torch.zeros(200).long())
    assert evaluation_batch_size([wide], 64, small, "running") == 64


def test_one_metric_update_per_evaluation_batch_equals_one_per_slice():
    """Counts and concatenated lists do not depend on how a batch is split; float sums would."""
    torch.manual_seed(0)
    for classes in (2, 5):
        probs = torch.softmax(torch.randn(330, classes), dim=1)
        labels = torch.randint(0, classes, (330,))
        whole, sliced = classification_metrics(classes, "v/"), classification_metrics(classes, "v/")
        assert counts_or_lists(whole)
        whole.update(probs, labels)
        for start in range(0, 330, 64):
            sliced.update(probs[start : start + 64], labels[start : start + 64])
        a, b = whole.compute(), sliced.compute()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not counts_or_lists(MetricCollection({"mean": MeanMetric()}))
