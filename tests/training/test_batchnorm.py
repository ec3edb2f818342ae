"""BatchNorm evaluation modes: precise statistics recomputed on the training set, running, or per batch."""

from __future__ import annotations

import copy

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from i2m2.data.multimodal_dataset import DataSplits, MultimodalDataset
from i2m2.experiment import StageConfig
from i2m2.models.methods import build_method
from i2m2.models.mlp import MLP
from i2m2.training.batchnorm import BatchNormStats, recompute_batchnorm
from i2m2.training.datamodule import SplitsDataModule
from i2m2.training.fit import FitSettings, fit_and_test, quiet_lightning
from i2m2.training.lightning_module import MethodModule


def test_precise_batchnorm_recomputes_the_training_set_statistics():
    x = torch.tensor([[1.0, 2.0], [3.0, 0.0], [5.0, 2.0], [7.0, 4.0], [0.0, 1.0], [2.0, 1.0]])
    model = nn.Sequential(nn.Dropout(0.5), nn.BatchNorm1d(2))  # dropout before BN: off while recomputing
    norm = model[1]
    norm.running_mean.fill_(100.0)
    model.train()
    batches = [x[:3], x[3:]]
    assert recompute_batchnorm(model, batches, model) == 2
    # two equal batches: the mean of their means is the training-set mean
    assert torch.allclose(norm.running_mean, torch.tensor([3.0, 10.0 / 6]))
    # the variance is the mean of the two batches' unbiased variances (hand-computed)
    assert torch.allclose(norm.running_var, torch.tensor([(4.0 + 13.0) / 2, (4.0 / 3 + 3.0) / 2]))
    assert model.training and norm.training and norm.momentum == 0.1  # modes and momentum restored


def bn_splits(test_order: torch.Tensor | None = None) -> DataSplits:
    gen = torch.Generator().manual_seed(1)
    x = {"a": torch.randn(24, 3, generator=gen) * 3 + 2, "b": torch.randn(24, 2, generator=gen)}
    y = torch.randint(0, 3, (24,), generator=gen)

    def part(lo: int, hi: int, order: torch.Tensor | None = None) -> MultimodalDataset:
        index = torch.arange(lo, hi) if order is None else lo + order
        return MultimodalDataset({m: v[index] for m, v in x.items()}, y[index])

    return DataSplits(part(0, 16), part(16, 20), part(16, 24, test_order), num_classes=3)


def bn_model() -> nn.Module:
    def unimodal(m: str) -> nn.Module:
        dim = 3 if m == "a" else 2
        return nn.Sequential(nn.BatchNorm1d(dim), MLP(dim, [4], 3))

    return build_method("intra", ("a", "b"), unimodal=unimodal, inter=lambda mods: None, num_classes=3)


def test_precise_batchnorm_in_a_training_job_uses_the_training_set(tmp_path):
    quiet_lightning()
    splits = bn_splits()
    config = StageConfig("sgd", lr=0.01, max_epochs=1, batch_size=16, bn_stats="precise")
    result = fit_and_test(bn_model(), splits, FitSettings(config, predict=False))
    train = splits.train.inputs["a"]
    # one training batch of 16: exactly the training set's mean and unbiased variance
    assert torch.allclose(result.state_dict["experts.a.network.0.running_mean"], train.mean(0), atol=1e-5)
    assert torch.allclose(result.state_dict["experts.a.network.0.running_var"], train.var(0), atol=1e-4)
    running = fit_and_test(bn_model(), splits, FitSettings(replace_bn(config, "running"), predict=False))
    assert not torch.allclose(
        running.state_dict["experts.a.network.0.running_mean"], train.mean(0), atol=1e-2
    )
    # recomputing does not disturb training: same batch order and losses over 3 epochs of batches of 4
    losses = {}
    for mode in ("running", "precise"):
        three = StageConfig("sgd", lr=0.05, max_epochs=3, batch_size=4, bn_stats=mode)
        torch.manual_seed(0)  # the same initial weights
        curve = fit_and_test(bn_model(), splits, FitSettings(three, predict=False)).curve.splitlines()
        column = curve[0].split(",").index("train/loss")
        losses[mode] = [row.split(",")[column] for row in curve[1:] if row.split(",")[column]]
    assert len(losses["running"]) == 3 and losses["running"] == losses["precise"]


def replace_bn(config: StageConfig, mode: str) -> StageConfig:
    return StageConfig(**{**vars(config), "bn_stats": mode})


@pytest.mark.parametrize(
    ("mode", "depends_on_batch"), [("running", False), ("precise", False), ("batch", True)]
)
def test_only_batch_statistics_make_a_prediction_depend_on_its_batch(mode, depends_on_batch):
    quiet_lightning()
    torch.manual_seed(0)
    model = bn_model()
    for m in model.modules():  # running statistics unlike any batch's
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.fill_(0.5)
            m.running_var.fill_(4.0)
    order = torch.randperm(8, generator=torch.Generator().manual_seed(3))
    outputs, buffers = [], []
    for splits in (bn_splits(), bn_splits(order)):
        module = MethodModule(copy.deepcopy(model))
        module.collect_predictions = True
        trainer = pl.Trainer(
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[BatchNormStats(mode)],
        )
        trainer.test(module, datamodule=SplitsDataModule(splits, batch_size=4), verbose=False)
        outputs.append(torch.cat([b["log_probs"] for b in module.test_outputs]))
        buffers.append(module.model.state_dict()["experts.a.network.0.running_mean"].clone())
        # afterwards BatchNorm is an ordinary layer again: same mode as the rest, tracking statistics
        assert len({m.training for m in module.model.modules()}) == 1
        assert all(m.track_running_stats for m in module.model.modules() if isinstance(m, nn.BatchNorm1d))
    same = torch.allclose(outputs[0][order], outputs[1], atol=1e-6)
    assert same != depends_on_batch
    if mode != "precise":  # evaluation leaves the running statistics alone
        assert torch.equal(buffers[0], torch.full((3,), 0.5)) and torch.equal(buffers[1], buffers[0])
