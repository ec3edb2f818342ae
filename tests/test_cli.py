"""The ``i2m2`` command: help, one-line errors with exit status 2, LightningCLI configs, the demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from i2m2.cli import main

CONFIG = Path(__file__).parents[1] / "src" / "i2m2" / "configs" / "synthetic-i2m2.yaml"


@pytest.mark.parametrize("command", [[], ["run"], ["demo"], ["data", "avmnist"], ["analyze"], ["fit"]])
def test_every_command_explains_itself(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "no-such-experiment", "--out", "{tmp}/r"], "unknown experiment 'no-such-experiment'"),
        (["run", "synthetic", "--methods", "bogus", "--out", "{tmp}/r"], "unknown method 'bogus'"),
        (["run", "synthetic", "--data-dir", "{tmp}/missing"], "no such file or folder"),
        (["run", "synthetic", "--out", "{tmp}/a-file"], "not a folder"),
        (["run", "synthetic", "--seeds", "0", "--out", "{tmp}/r"], "--seeds must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exit_info:  # argparse's own errors
        code = exit_info.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


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
            "--data.init_args.n_train",
            "200",
        ]
    )
    checkpoints = list(tmp_path.rglob("*.ckpt"))
    assert checkpoints, "ModelCheckpoint wrote nothing"
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["trainer"]["max_epochs"] == 2
    assert saved["model"]["model"]["class_path"] == "i2m2.I2M2"


def test_print_config_and_unknown_key(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "-c", str(CONFIG), "--print_config"])
    assert exit_info.value.code == 0
    assert "class_path: i2m2.LateFusion" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "-c", str(CONFIG), "--model.no_such_option", "1"])
    assert exit_info.value.code == 2
    assert "no_such_option" in capsys.readouterr().err


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
    assert "[15/15] both seed=0 i2m2: acc=" in done.stderr
    assert "\r" not in done.stderr
    assert "| i2m2 |" in done.stdout
    results = json.loads((out / "results.json").read_text())
    assert {r["group"] for r in results["rows"]} == {"intra-dominant", "inter-dominant", "both"}


def test_recipe_config_changes_the_run(tmp_path, capsys):
    config = tmp_path / "recipe.yaml"
    config.write_text("pretrain:\n  inter: {lr: 0.05, max_epochs: 2}\nfinetune:\n  max_epochs: 1\n")
    assert main(["run", "synthetic", "--config", str(config), "--print-recipe"]) == 0
    recipe = yaml.safe_load(capsys.readouterr().out)
    assert recipe["pretrain"]["inter"]["lr"] == 0.05
    assert recipe["pretrain"]["m0"]["lr"] == 0.003  # untouched experts keep the experiment's settings
    assert recipe["finetune"]["max_epochs"] == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pretrain: {learning_rate: 0.1}\n", "unknown key(s) ['learning_rate']"),
        ("optimizer: sgd\n", "unknown key(s) ['optimizer']"),
        ("pretrain: [1, 2\n", "not valid YAML"),
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


@pytest.mark.parametrize("config", sorted(CONFIG.parent.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_parses(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "-c", str(config), "--print_config"])
    assert exit_info.value.code == 0
    assert "class_path: i2m2.I2M2" in capsys.readouterr().out


def test_avmnist_config_trains_on_multibench_files(tmp_path, monkeypatch):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_avmnist_data import write_avmnist

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


def test_run_with_two_process_ddp(tmp_path):
    """``--devices 2 --strategy ddp`` reaches the Trainer: Lightning relaunches the command per rank and
    only rank 0 writes and reports."""
    script = Path(sys.executable).with_name("i2m2")
    out = tmp_path / "run"
    argv = [
        str(script),
        "run",
        "synthetic",
        "--accelerator",
        "cpu",
        "--devices",
        "2",
        "--strategy",
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
    assert results["config"]["scale"]["devices"] == 2
    assert results["config"]["scale"]["strategy"] == "ddp"
