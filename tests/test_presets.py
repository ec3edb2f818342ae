"""Recipe presets (``--recipe paper|authors-code``), BatchNorm evaluation modes and the mixture test of
products (issue 14)."""

from __future__ import annotations

import copy
import json
import math

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from i2m2.cli import main
from i2m2.data.multimodal_dataset import DataSplits, MultimodalDataset
from i2m2.experiment import Recipe, StageChanges, StageConfig
from i2m2.models.methods import build_method
from i2m2.models.mlp import MLP
from i2m2.runs.predictions import Predictions
from i2m2.training.batchnorm import BatchNormStats, recompute_batchnorm
from i2m2.training.datamodule import SplitsDataModule
from i2m2.training.fit import FitSettings, fit_and_test, quiet_lightning
from i2m2.training.lightning_module import MethodModule
from test_avmnist_data import write_avmnist


def print_config(capsys, *argv: str) -> tuple[str, dict]:
    assert main(["run", *argv, "--print-config"]) == 0
    out = capsys.readouterr().out
    return out.splitlines()[0], yaml.safe_load(out)


def test_authors_code_preset_shows_the_authors_values(capsys):
    comment, config = print_config(capsys, "avmnist", "--recipe", "authors-code")
    assert config["recipe"] == "authors-code"
    assert "c = 3 unimodal / 6 inter" in comment and comment.startswith("# avmnist")
    pre, fine = config["pretrain"], config["finetune"]
    assert (pre["optimizer"], pre["lr"], pre["momentum"], pre["weight_decay"]) == ("sgd", 0.01, 0.0, 1e-4)
    assert (pre["max_epochs"], pre["batch_size"], pre["gradient_clip_val"]) == (30, 40, 8.0)
    assert pre["patience"] is None and pre["bn_stats"] == "batch"
    assert (fine["lr"], fine["max_epochs"], fine["patience"], fine["bn_stats"]) == (0.01, 30, 11, "running")
    assert config["experts"] == {"inter": {"lr": 0.1, "patience": 11, "bn_stats": "running"}}
    assert config["finetune_methods"] == {"intra": {"lr": 0.1}}
    # the default is named, and is Appendix B's recipe
    comment, config = print_config(capsys, "avmnist")
    assert config["recipe"] == "paper" and "c = 6 unimodal / 6 inter" in comment
    assert (config["pretrain"]["lr"], config["pretrain"]["max_epochs"]) == (0.05, 25)
    assert config["pretrain"]["bn_stats"] == "precise" and config["finetune_methods"] == {}
    # a user's change still applies on top of a preset
    _, config = print_config(
        capsys, "avmnist", "--recipe", "authors-code", "--finetune-methods.intra.lr", "0.2"
    )
    assert config["finetune_methods"] == {"intra": {"lr": 0.2}}
    _, config = print_config(capsys, "mimic", "--recipe", "authors-code")
    assert (config["pretrain"]["optimizer"], config["pretrain"]["weight_decay"]) == ("rmsprop", 0.0)
    assert config["pretrain"]["gradient_clip_val"] == 8.0 and config["pretrain"]["patience"] is None
    assert config["finetune"]["patience"] == 11 and config["experts"]["inter"]["patience"] == 11
    assert config["finetune_methods"] == {"intra": {"patience": 11}, "i2m2": {"patience": 11}}


def test_help_names_the_default_recipe(capsys):
    with pytest.raises(SystemExit):
        main(["run", "avmnist", "--help"])
    out = capsys.readouterr().out
    assert "--recipe {paper,authors-code}" in out and "default: paper" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "avmnist", "--recipe", "bogus"], 'key "recipe"'),
        (["run", "mimic", "--recipe", "bogus"], 'key "recipe"'),
        (["run", "avmnist", "--finetune-methods.inter.lr", "0.1"], "unknown name(s) ['inter']"),
        (["run", "avmnist", "--pretrain.bn_stats", "eval"], 'key "pretrain.bn_stats"'),
    ],
)
def test_unknown_preset_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_stage_values_are_checked():
    with pytest.raises(ValueError, match="bn_stats"):
        StageConfig(bn_stats="eval")
    changes = StageChanges(lr=0.1, bn_stats="batch")
    assert changes.applied_to(StageConfig()).bn_stats == "batch"
    from i2m2.experiments.synthetic import synthetic

    experiment = synthetic()
    with pytest.raises(ValueError, match="finetune_methods"):
        type(experiment)(**{**vars(experiment), "recipe": Recipe(finetune_methods={"inter": changes})})


@pytest.mark.parametrize("recipe", ["paper", "authors-code"])
def test_both_presets_run_stage_1_and_stage_2_end_to_end(recipe, tmp_path):
    write_avmnist(tmp_path / "data", n_train=36, n_test=12)
    out = tmp_path / "run"
    argv = ["run", "avmnist", "--recipe", recipe, "--data-dir", str(tmp_path / "data"), "--seeds", "1"]
    argv += ["--max-epochs", "1", "--fusion", "lf", "--methods", "intra", "i2m2", "--out", str(out)]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    rows = {row["method"]: row["metrics"] for row in results["rows"]}
    assert set(rows) == {"intra", "i2m2"}  # the stage-1 jobs they start from ran too
    for method in ("intra", "i2m2"):
        assert 0 <= rows[method]["mixture_acc"]["mean"] <= 1
    for method in ("inter", "unimodal-audio"):
        assert (
            "mixture_acc"
            not in json.loads((out / "jobs" / f"all__{method}__seed0.json").read_text())["metrics"]
        )

    def job(method: str) -> tuple[dict, dict]:
        saved = torch.load(out / "checkpoints" / f"all__{method}__seed0.ckpt", weights_only=True)
        return saved["hyper_parameters"]["job"]["config"], saved["state_dict"]

    authors = recipe == "authors-code"
    uni, inter = (3, 6) if authors else (6, 6)
    expected = {  # method: (lr, bn_stats)
        "unimodal-audio": (0.01 if authors else 0.05, "batch" if authors else "precise"),
        "inter": (0.1 if authors else 0.05, "running" if authors else "precise"),
        "intra": (0.1 if authors else 0.01, "running" if authors else "precise"),
        "i2m2": (0.01, "running" if authors else "precise"),
    }
    for method, (lr, bn) in expected.items():
        config, _ = job(method)
        assert (config["lr"], config["bn_stats"]) == (lr, bn), method
    # I2M2 loaded the c = 3 (authors-code) unimodal experts and the c = 6 inter expert: first convs
    convs = {k: v.shape[0] for k, v in job("i2m2")[1].items() if k.endswith("blocks.0.0.weight")}
    assert convs["model.experts.audio.network.0.blocks.0.0.weight"] == uni
    assert convs["model.experts.image.network.0.blocks.0.0.weight"] == uni
    assert convs["model.experts.inter.encoders.audio.blocks.0.0.weight"] == inter
    assert job("intra")[1]["model.experts.audio.network.0.blocks.5.0.weight"].shape[0] == 32 * uni


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


def test_mixture_accuracy_by_hand():
    from i2m2.metrics import mixture_accuracy

    # expert 1 says class 0 firmly on example 0; expert 2 says class 1 mildly: mixture 0.55 vs 0.45 -> 0
    p1 = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    p2 = np.array([[0.2, 0.8], [0.4, 0.6], [0.1, 0.9]])
    predictions = Predictions(
        labels=np.array([0, 0, 1]),
        log_probs=np.zeros((3, 2)),
        experts={"a": np.log(p1), "b": np.log(p2)},
    )
    # mixtures: [0.55, 0.45] -> 0 (right), [0.3, 0.7] -> 1 (wrong), [0.3, 0.7] -> 1 (right)
    assert math.isclose(mixture_accuracy(predictions), 2 / 3)


def test_per_method_finetune_changes_apply_last_also_from_scratch(tmp_path):
    from dataclasses import replace

    from i2m2.experiments.synthetic import synthetic

    experiment = synthetic()
    experiment.recipe = replace(
        experiment.recipe,
        pretrain=replace(experiment.recipe.pretrain, max_epochs=7, patience=None),
        finetune_methods={"intra": StageChanges(lr=0.3, patience=11)},
    )
    for scratch in (False, True):
        intra = experiment.stage_config("intra", from_scratch=scratch)
        i2m2 = experiment.stage_config("i2m2", from_scratch=scratch)
        assert (intra.lr, intra.patience) == (0.3, 11)
        assert i2m2.lr == experiment.recipe.finetune.lr
        assert intra.max_epochs == (7 if scratch else experiment.recipe.finetune.max_epochs)


def test_mimic_authors_code_time_series_expert_reads_each_step_through_a_linear():
    from i2m2.experiments.mimic import mimic_unimodal_classifier

    paper = mimic_unimodal_classifier("timeseries", 2)
    authors = mimic_unimodal_classifier("timeseries", 2, step_linear=True)
    x = torch.randn(4, 24, 12)
    assert paper(x).shape == authors(x).shape == (4, 2)
    assert paper[1][1].in_features == 720 and authors[1][1].in_features == 360  # 24 steps x 15
    assert mimic_unimodal_classifier("static", 2, step_linear=True)[1][1].in_features == 10
