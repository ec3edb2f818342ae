"""``i2m2 data avmnist`` and ``i2m2 run avmnist`` end to end through the command line, on tiny files."""

from __future__ import annotations

import json

import numpy as np
import torch

from i2m2.cli import main
from test_avmnist_build import write_fsdd, write_idx
from test_avmnist_data import write_avmnist

ROWS = {"unimodal:image", "unimodal:audio", "intra", "inter[lf]", "inter[lrtf]", "i2m2[lf]", "i2m2[lrtf]"}


def test_run_produces_every_row_of_table_1(tmp_path, capsys):
    write_avmnist(tmp_path / "data", n_train=36, n_test=12)
    out = tmp_path / "run"
    argv = ["run", "avmnist", "--data-dir", str(tmp_path / "data"), "--seeds", "1", "--max-epochs", "1"]
    assert main([*argv, "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert {row["method"] for row in results["rows"]} == ROWS
    for row in results["rows"]:
        assert 0 <= row["metrics"]["acc"]["mean"] <= 1 and len(row["metrics"]["acc"]["per_seed"]) == 1
    assert results["config"]["num_classes"] == 10
    predictions = np.load(out / "predictions" / "all__i2m2-lrtf-__seed0.npz")
    assert predictions["log_probs"].shape == (12, 10)
    assert np.array_equal(predictions["labels"], np.load(tmp_path / "data" / "test_labels.npy"))
    hyper = torch.load(out / "checkpoints" / "all__i2m2-lrtf-__seed0.ckpt", weights_only=True)[
        "hyper_parameters"
    ]
    assert hyper["job"]["init_from"] == ["unimodal:image", "unimodal:audio", "inter[lrtf]"]
    captured = capsys.readouterr()
    assert "| i2m2[lrtf] |" in captured.out
    # Not a terminal: one plain line per epoch of every job, and one per finished job.
    assert "seed=0 i2m2[lrtf] epoch 1/1: " in captured.err and "val/acc=" in captured.err
    assert "train/loss=" in captured.err and "_step=" not in captured.err and "_epoch=" not in captured.err
    assert "[7/7] seed=0 i2m2[lrtf]: acc=" in captured.err


def test_data_command_builds_files_the_run_reads(tmp_path, capsys):
    write_idx(tmp_path / "mnist", n_train=30, n_test=10)
    fsdd = write_fsdd(tmp_path / "fsdd")
    out = tmp_path / "avmnist"
    argv = ["data", "avmnist", "--mnist", str(tmp_path / "mnist"), "--fsdd", str(fsdd), "--out", str(out)]
    assert main([*argv, "--seed", "3", "--snr-db", "-5", "--energy-kept", "0.5"]) == 0
    assert "'train': 30, 'test': 10" in capsys.readouterr().out
    build = json.loads((out / "avmnist_build.json").read_text())
    assert (build["seed"], build["snr_db"], build["energy_target"]) == (3, -5.0, 0.5)
    assert build["energy_kept"] >= 0.5
    run = [
        "run",
        "avmnist",
        "--data-dir",
        str(out),
        "--seeds",
        "1",
        "--max-epochs",
        "1",
        "--out",
        str(tmp_path / "r"),
    ]
    assert main([*run, "--methods", "unimodal:audio"]) == 0
    rows = json.loads((tmp_path / "r" / "results.json").read_text())["rows"]
    assert [row["method"] for row in rows] == ["unimodal:audio"]


def test_bad_data_is_one_line_and_exit_2(tmp_path, capsys):
    write_avmnist(tmp_path / "data")
    np.save(tmp_path / "data" / "test_labels.npy", np.full(8, 12))
    code = main(["run", "avmnist", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "test_labels.npy" in err and "0..9" in err
    (tmp_path / "empty").mkdir()
    code = main(["data", "avmnist", "--fsdd", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "no .wav files" in err and len(err.strip().splitlines()) == 1
    fsdd = write_fsdd(tmp_path / "fsdd")
    bad = ["data", "avmnist", "--fsdd", str(fsdd), "--out", str(tmp_path / "o"), "--energy-kept", "0"]
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert "energy_kept must be in (0, 1]" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
