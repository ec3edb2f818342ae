"""``i2m2 run`` and ``i2m2 fit`` read options one way: parsers generated from signatures, the recipe spelled
the same in both, any Trainer argument passed through."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from i2m2.catalog import get_factory
from i2m2.cli import main
from i2m2.cli.run import NOT_OPTIONS, build_run_parser
from i2m2.orchestration.options import RunOptions

QUICK = ["--seeds", "1", "--max-epochs", "2", "--methods", "unimodal:m0", "--threads", "1"]


def test_the_run_parser_is_generated_from_run_options_and_the_factory():
    parser = build_run_parser("i2m2 run", get_factory("synthetic"))
    options = {a.dest for a in parser._actions}
    assert {f.name for f in fields(RunOptions) if f.name not in NOT_OPTIONS} <= options
    assert {"num_classes", "n_train", "regimes"} <= options  # the factory's keyword arguments
    assert {"trainer.accumulate_grad_batches", "trainer.deterministic", "trainer.logger"} <= options
    assert "trainer.max_epochs" not in options  # the recipe's
    assert [o for o in parser._option_string_actions if "print" in o] == ["--print_config"]


def test_print_config_resolves_the_recipe_and_round_trips(tmp_path, capsys):
    argv = ["run", "synthetic", "--pretrain.lr", "0.02", "--finetune-methods.intra.lr", "0.3", *QUICK]
    assert main([*argv, "--print_config"]) == 0
    printed = capsys.readouterr().out
    config = yaml.safe_load(printed)
    assert config["pretrain"]["lr"] == 0.02 and config["pretrain"]["batch_size"] == 128
    assert config["finetune_methods"] == {"intra": {"lr": 0.3}}
    assert config["methods"] == ["unimodal:m0"] and config["max_epochs"] == 2
    saved = tmp_path / "run.yaml"
    saved.write_text(printed)
    assert main(["run", "synthetic", "--config", str(saved), "--print_config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == config


def test_dashes_and_underscores_are_the_same_option(capsys):
    assert main(["run", "synthetic", "--max_epochs", "3", "--first_seed", "2", "--print_config"]) == 0
    underscored = yaml.safe_load(capsys.readouterr().out)
    assert main(["run", "synthetic", "--max-epochs", "3", "--first-seed", "2", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == underscored
    assert underscored["max_epochs"] == 3 and underscored["first_seed"] == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--trainer.max_epochs", "3"], "--trainer.max_epochs: set by the recipe's max_epochs"),
        (["--trainer.devices", "4096"], "--trainer.devices: expected at most"),
        (["--seeds", "1", "synthetic"], None),  # options before the experiment's name
    ],
)
def test_trainer_options_owned_by_the_recipe_are_refused(argv, message, tmp_path, capsys):
    if message is None:
        assert main(["run", *argv, "--print_config"]) == 0
        assert "seeds: 1" in capsys.readouterr().out
        return
    assert main(["run", "synthetic", *argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_trainer_arguments_reach_the_trainer_and_loggers_write_per_job(tmp_path, monkeypatch):
    out, board, flow = tmp_path / "run", tmp_path / "tb", tmp_path / "mlruns"
    argv = ["run", "synthetic", "--regimes", "both", *QUICK, "--out", str(out)]
    argv += ["--trainer.logger", "TensorBoardLogger", "--trainer.logger.save_dir", str(board)]
    argv += ["--trainer.accumulate_grad_batches", "2"]
    assert main(argv) == 0
    events = list(board.rglob("events.out.tfevents.*"))
    assert events and {p.parent.name for p in events} == {"both__unimodal-m0__seed0"}
    assert (out / "logs" / "both__unimodal-m0__seed0" / "metrics.csv").is_file()  # the CSV curve too
    trainer = json.loads((out / "results.json").read_text())["config"]["trainer"]
    assert trainer["accumulate_grad_batches"] == 2
    assert trainer["logger"]["class_path"].endswith("TensorBoardLogger")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a folder store: no database server in a test
    argv = ["run", "synthetic", "--regimes", "both", *QUICK, "--out", str(tmp_path / "run2")]
    argv += ["--trainer.logger", "MLFlowLogger", "--trainer.logger.tracking_uri", f"file:{flow}"]
    assert main(argv) == 0
    assert list(flow.rglob("metrics/val/acc"))


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
