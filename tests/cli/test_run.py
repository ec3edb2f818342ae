"""``i2m2 run`` and ``i2m2 demo``: a parser generated from signatures, the recipe's options and YAML configs,
any Trainer argument passed through (DDP included), seeds split over runs, the installed script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


@pytest.mark.slow
def test_seeds_split_over_two_runs_match_one_run(tmp_path, capsys):
    """--first-seed: seed k is the same job wherever it runs, so seeds can be split over machines."""
    common = ["run", "synthetic", "--max-epochs", "2", "--methods", "unimodal:m0", "i2m2", "--threads", "1"]
    assert main([*common, "--seeds", "2", "--out", str(tmp_path / "both")]) == 0
    assert main([*common, "--seeds", "1", "--first-seed", "1", "--out", str(tmp_path / "second")]) == 0
    capsys.readouterr()
    second = json.loads((tmp_path / "second" / "results.json").read_text())
    assert second["config"]["seeds"] == [1]
    assert "from seed 1" in second["config"]["title"]
    jobs = sorted(p.name for p in (tmp_path / "second" / "jobs").glob("*.json"))
    assert jobs and all(name.endswith("__seed1.json") for name in jobs)
    for name in jobs:
        split = json.loads((tmp_path / "second" / "jobs" / name).read_text())["metrics"]
        whole = json.loads((tmp_path / "both" / "jobs" / name).read_text())["metrics"]
        assert split == pytest.approx(whole, abs=1e-6), name
    # ... and seed 1 is not seed 0 (the option really moved the seed).
    seed0 = json.loads((tmp_path / "both" / "jobs" / jobs[0].replace("seed1", "seed0")).read_text())
    assert seed0["metrics"] != json.loads((tmp_path / "second" / "jobs" / jobs[0]).read_text())["metrics"]


def test_unwritable_out_is_reported(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # running as root: make the target impossible instead
            locked = Path("/proc/i2m2-cannot-write-here")
        code = main(["run", "synthetic", "--out", str(locked / "run")])
    finally:
        (tmp_path / "locked").chmod(0o700)
    assert code == 2
    assert "not writable" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_console_script_logs_lines_without_a_terminal(tmp_path):
    """The installed ``i2m2`` script runs the demo end to end; without a TTY progress is plain lines."""
    script = Path(sys.executable).with_name("i2m2")
    out = tmp_path / "demo"
    done = subprocess.run(
        [str(script), "demo", "--seeds", "1", "--max-epochs", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CI": "true"},
    )
    assert done.returncode == 0, done.stderr
    # The demo runs its jobs side by side on several cores: they finish in any order.
    assert "[15/15] " in done.stderr and "] both seed=0 i2m2: acc=" in done.stderr
    assert "\r" not in done.stderr
    assert "| i2m2 |" in done.stdout
    results = json.loads((out / "results.json").read_text())
    assert {r["group"] for r in results["rows"]} == {"intra-dominant", "inter-dominant", "both"}


def test_recipe_config_changes_the_run(tmp_path, capsys):
    config = tmp_path / "recipe.yaml"
    config.write_text("experts:\n  inter: {lr: 1e-2, max_epochs: 2}\nfinetune:\n  max_epochs: 1\n")
    assert main(["run", "synthetic", "--config", str(config), "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["experts"]["inter"] == {"lr": 0.01, "max_epochs": 2}  # 1e-2 is a float, not a string
    assert printed["pretrain"]["lr"] == 0.003  # untouched settings keep the experiment's values
    assert printed["finetune"]["max_epochs"] == 1 and printed["finetune"]["lr"] == 0.001
    # What --print-config writes, --config reads back to the same resolved options.
    again = tmp_path / "printed.yaml"
    again.write_text(yaml.safe_dump(printed))
    assert main(["run", "synthetic", "--config", str(again), "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == printed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pretrain: {learning_rate: 0.1}\n", "learning_rate"),
        ("optimizer: sgd\n", "optimizer"),
        ("pretrain: [1, 2\n", "Problems parsing config"),
        ("pretrain: {lr: abc}\n", 'key "pretrain.lr"'),
        ("pretrain: {max_epochs: 2.5}\n", 'key "pretrain.max_epochs"'),
        ("pretrain: {optimizer: lbfgs}\n", 'key "pretrain.optimizer"'),
    ],
)
def test_bad_recipe_config_is_one_line(text, message, tmp_path, capsys):
    config = tmp_path / "recipe.yaml"
    config.write_text(text)
    assert main(["run", "synthetic", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_run_with_two_process_ddp(tmp_path):
    """``--devices 2 --strategy ddp`` reaches the Trainer: Lightning relaunches the command per rank and
    only rank 0 writes and reports."""
    script = Path(sys.executable).with_name("i2m2")
    out = tmp_path / "run"
    argv = [
        str(script),
        "run",
        "synthetic",
        "--trainer.accelerator",
        "cpu",
        "--trainer.devices",
        "2",
        "--trainer.strategy",
        "ddp",
        "--seeds",
        "1",
        "--max-epochs",
        "1",
        "--methods",
        "unimodal:m0",
        "--out",
        str(out),
    ]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CI": "true", "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stderr.lower()
    assert done.stdout.count("| unimodal:m0 |") == 1
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["trainer"]["devices"] == 2
    assert results["config"]["trainer"]["strategy"] == "ddp"
