"""``i2m2 fit``: LightningCLI over one method of any experiment, from flags or YAML configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from i2m2.cli import main
from tests.helpers.avmnist import write_avmnist
from tests.helpers.paths import REPO

CONFIG = REPO / "src" / "i2m2" / "configs" / "synthetic-i2m2.yaml"


def test_fit_from_yaml_config_with_overrides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(
        [
            "fit",
            "-c",
            str(CONFIG),
            "--trainer.max_epochs",
            "2",
            "--trainer.default_root_dir",
            str(tmp_path),
            "--model.init_args.finetune.lr",
            "0.01",
        ]
    )
    checkpoints = list(tmp_path.rglob("*.ckpt"))
    assert checkpoints, "ModelCheckpoint wrote nothing"
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["trainer"]["max_epochs"] == 2
    assert saved["model"]["init_args"]["finetune"]["lr"] == 0.01
    assert saved["model"]["class_path"].endswith("ExperimentMethodModule")


def test_fit_any_experiment_by_name(tmp_path, monkeypatch):
    """``--experiment/--method/--group`` choose one method of any experiment, no DataModule per dataset."""
    monkeypatch.chdir(tmp_path)
    argv = ["fit", "--experiment", "synthetic", "--method", "inter", "--group", "inter-dominant"]
    main([*argv, "--trainer.max_epochs", "2", "--trainer.default_root_dir", str(tmp_path)])
    saved = yaml.safe_load(next(tmp_path.rglob("config.yaml")).read_text())
    assert saved["model"]["init_args"]["method"] == "inter"
    assert saved["data"]["init_args"]["group"] == "inter-dominant"
    checkpoint = torch.load(next(tmp_path.rglob("*.ckpt")), weights_only=True)
    assert any(k.startswith("model.experts.inter.") for k in checkpoint["state_dict"])


def test_fit_uses_the_recipes_per_method_finetune_settings(tmp_path):
    """``i2m2 fit`` trains intra with the recipe's stage 2 as ``i2m2 run`` does, per-method changes included
    (AV-MNIST's authors-code recipe fine-tunes intra at lr 0.1, I2M2 at its finetune lr 0.01)."""
    from i2m2.cli.experiment_modules import ExperimentMethodModule

    source = tmp_path / "authors.py"
    source.write_text(
        "from i2m2.experiments.avmnist import avmnist\n\n"
        "def authors():\n    return avmnist(recipe='authors-code')\n"
    )
    intra = ExperimentMethodModule(f"{source}:authors", method="intra")
    i2m2 = ExperimentMethodModule(f"{source}:authors", method="i2m2")
    assert intra.lr == pytest.approx(0.1) and i2m2.lr == pytest.approx(0.01)


def test_print_config_and_unknown_key(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "-c", str(CONFIG), "--print_config"])
    assert exit_info.value.code == 0
    assert "experiment: synthetic" in capsys.readouterr().out
    assert main(["fit", "-c", str(CONFIG), "--model.no_such_option", "1"]) == 2
    err = capsys.readouterr().err
    assert "no_such_option" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("config", sorted(CONFIG.parent.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_parses(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "-c", str(config), "--print_config"])
    assert exit_info.value.code == 0
    assert "class_path: i2m2." in capsys.readouterr().out


def test_avmnist_config_trains_on_multibench_files(tmp_path, monkeypatch):
    write_avmnist(tmp_path / "avmnist")
    monkeypatch.chdir(tmp_path)
    main(
        [
            "fit",
            "-c",
            str(CONFIG.parent / "avmnist-i2m2-lrtf.yaml"),
            "--data.init_args.data_dir",
            str(tmp_path / "avmnist"),
            "--trainer.max_epochs",
            "1",
            "--trainer.default_root_dir",
            str(tmp_path),
        ]
    )
    assert list(tmp_path.rglob("*.ckpt"))


def test_fit_prints_the_methods_recipe_and_reads_changes_as_run_does(capsys):
    argv = ["fit", "--experiment", "avmnist", "--method", "i2m2"]
    with pytest.raises(SystemExit):
        main([*argv, "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["data"]["init_args"]["batch_size"] == 40  # the recipe's, not a fallback of 64
    assert config["trainer"]["max_epochs"] == 25
    assert config["model"]["init_args"]["finetune"]["bn_stats"] == "precise"
    assert config["model"]["init_args"]["pretrain"]["gradient_clip_val"] == 8.0
    with pytest.raises(SystemExit):
        main([*argv, "--finetune.batch_size", "8", "--finetune.patience", "3", "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["data"]["init_args"]["batch_size"] == 8
    assert config["model"]["init_args"]["finetune"]["patience"] == 3


@pytest.mark.slow
def test_fit_calls_the_factory_once_and_trains_with_the_whole_recipe(tmp_path, monkeypatch):
    source = tmp_path / "counted.py"
    source.write_text(
        "from dataclasses import replace\n"
        "from i2m2.experiment import StageChanges\n"
        "from i2m2.experiments.synthetic import synthetic\n"
        "CALLS = []\n\n"
        "def counted():\n"
        "    CALLS.append(1)\n"
        "    e = synthetic(n_train=200, n_test=100, regimes=['both'])\n"
        "    e.recipe = e.recipe.changed(pretrain=StageChanges(batch_size=20, patience=1, max_epochs=30))\n"
        "    return e\n"
    )
    monkeypatch.chdir(tmp_path)
    main(["fit", "--experiment", f"{source}:counted", "--method", "unimodal:m0"])
    import sys

    module = next(m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == str(source))
    assert len(module.CALLS) == 1
    # ModelCheckpoint names the last epoch and step: 200 examples in batches of 20 (the recipe's, not a
    # fallback of 64) make 10 steps per epoch, and the recipe's patience of 1 stops long before 30 epochs.
    name = next(Path(tmp_path).rglob("*.ckpt")).stem  # epoch=E-step=S
    epoch, step = (int(part.split("=")[1]) for part in name.split("-"))
    assert step == 10 * (epoch + 1) and epoch < 29
