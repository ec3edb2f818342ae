"""``i2m2 tune``: tuned.yaml round-trips through ``i2m2 run --config``; bad input is one line and leaves
the tune's folder as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from i2m2.cli import main

TINY = str(Path(__file__).parents[1] / "tuning" / "tiny.py") + ":tiny"
SPACE = ["--space.pretrain.lr", "0.03,0.3", "--space.pretrain.weight-decay", "0"]
SPACE += ["--space.finetune.lr", "0.01,0.1", "--space.finetune.weight_decay", "0"]
QUICK = ["--trials", "2", "--threads", "1", "--pruner", "none"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> Path:
    """A finished tune of m0, m1 and intra (the stage-2 product starts from the tuned experts)."""
    out = tmp_path_factory.mktemp("tune") / "tuned"
    assert main(["tune", TINY, *SPACE, *QUICK, "--methods", "intra", "--out", str(out)]) == 0
    return out


def test_tuned_yaml_round_trips_through_i2m2_run_config(tuned, tmp_path, capsys):
    config = yaml.safe_load((tuned / "tuned.yaml").read_text())
    assert set(config["experts"]) == {"m0", "m1"} and set(config["finetune_methods"]) == {"intra"}
    assert config["experts"]["m0"]["lr"] in (0.03, 0.3)
    assert "selected on validation acc only" in (tuned / "tuned.yaml").read_text()
    capsys.readouterr()
    assert main(["run", TINY, "--config", str(tuned / "tuned.yaml"), "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    for key in ("pretrain", "finetune", "experts", "finetune_methods"):
        assert printed[key] == config[key]
    out = tmp_path / "run"
    argv = ["run", TINY, "--config", str(tuned / "tuned.yaml"), "--seeds", "1", "--methods", "unimodal:m0"]
    assert main([*argv, "--threads", "1", "--out", str(out)]) == 0
    recipe = json.loads((out / "results.json").read_text())["config"]["recipe"]
    assert recipe["experts"]["m0"]["lr"] == config["experts"]["m0"]["lr"]
    assert recipe["finetune_methods"]["intra"]["lr"] == config["finetune_methods"]["intra"]["lr"]


def test_a_finished_tune_run_again_trains_nothing_and_says_the_same(tuned, tmp_path, capsys):
    copy = tmp_path / "again"
    shutil.copytree(tuned, copy)
    before = (copy / "tuned.yaml").read_text()
    capsys.readouterr()
    assert main(["tune", TINY, *SPACE, *QUICK, "--methods", "intra", "--out", str(copy)]) == 0
    assert "trial" not in capsys.readouterr().err  # no trial ran
    assert (copy / "tuned.yaml").read_text() == before


BAD = [
    (["--space.pretrain.foo", "1"], "--space.pretrain.foo: unknown setting 'foo'"),
    (["--space.experts.video.lr", "1e-3"], "--space.experts.video.lr: unknown name 'video'"),
    (["--space.pretrain.lr", "1e-1:1e-5:log"], "--space.pretrain.lr 1e-1:1e-5:log: empty range"),
    (["--space.pretrain.lr", "-1e-3,1e-2"], "lr: expected a number > 0, got -0.001"),
    (["--space.pretrain.weight_decay", "0:1e-2:log"], "a log range needs LOW > 0"),
    (["--trials", "0"], "--trials: expected an integer >= 1, got 0"),
    (
        ["--storage", "sqlite:////no/such/folder/study.db"],
        "--storage sqlite:////no/such/folder/study.db: cannot",
    ),
    (["--storage", "nosuchdb://host/x"], "--storage nosuchdb://host/x: cannot open it"),
    (["--space.pretrain.lr", "0.01,0.1"], "was made for another tune (space:"),
    (["--sampler", "tpe"], "was made for another tune (sampler:"),
    (["--space.finetune.lr", "0.01,0.3"], "study 'tiny/intra@"),
    (["--seeds", "2"], "was made for another tune (seeds: study [0], now [0, 1])"),
]


@pytest.mark.parametrize(("argv", "message"), BAD)
def test_bad_input_is_one_line_and_the_folder_is_left_as_it_was(tuned, tmp_path, capsys, argv, message):
    copy = tmp_path / "dir"
    shutil.copytree(tuned, copy)
    before = snapshot(copy)
    capsys.readouterr()
    quick = [a for a in QUICK if a not in ("--trials", "2")] if "--trials" in argv else QUICK
    code = main(["tune", TINY, *SPACE, *quick, "--methods", "intra", "--out", str(copy), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("i2m2 tune: error: ") and "\n" not in err and message in err
    assert snapshot(copy) == before


def test_a_study_of_another_experiment_in_dir_is_refused(tuned, tmp_path, capsys):
    copy = tmp_path / "dir"
    shutil.copytree(tuned, copy)
    before = snapshot(copy)
    capsys.readouterr()
    code = main(["tune", "synthetic", "--trials", "1", "--out", str(copy)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "holds study 'tiny/unimodal:m0' of experiment 'tiny', not 'synthetic'; use another --out" in err
    assert snapshot(copy) == before


def test_tune_is_a_command_with_help(capsys):
    assert main(["tune", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--space.pretrain.lr" in text and "--trials" in text and "--storage" in text
