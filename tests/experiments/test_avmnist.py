"""The ``avmnist`` experiment: the paper's models, its recipe presets, data and run end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from i2m2.catalog import get_experiment
from i2m2.cli import main
from i2m2.experiments.avmnist import avmnist_late_fusion, avmnist_lrtf, avmnist_unimodal_classifier
from i2m2.experiments.mimic import mimic_unimodal_classifier
from i2m2.models.fusion import LateFusion, LowRankTensorFusion
from i2m2.models.methods import build_method
from tests.helpers.avmnist import write_avmnist, write_fsdd, write_idx
from tests.helpers.models import check_trains

ROWS = {"unimodal:image", "unimodal:audio", "intra", "inter[lf]", "inter[lrtf]", "i2m2[lf]", "i2m2[lrtf]"}


@pytest.mark.slow
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


@pytest.mark.slow
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


def test_experiment_builds_every_method(tmp_path):
    experiment = get_experiment("avmnist")
    assert experiment.modalities == ("image", "audio") and experiment.num_classes == 10
    assert set(experiment.build_inter) == {"lf", "lrtf"} and experiment.needs_data_dir
    stage = experiment.recipe.stage1("image")
    assert (stage.optimizer, stage.lr, stage.weight_decay, stage.batch_size) == ("sgd", 5e-2, 1e-4, 40)
    assert stage.max_epochs == 25 and stage.gradient_clip_val == 8.0
    write_avmnist(tmp_path, n_train=6, n_test=2)
    splits = experiment.load_data("", tmp_path, 0)
    batch = {m: splits.train.inputs[m][:3] for m in experiment.modalities}
    methods = {
        "lf": ("unimodal:image", "unimodal:audio", "intra", "inter", "i2m2"),
        "lrtf": ("inter", "i2m2"),
    }
    for fusion, inter in experiment.build_inter.items():
        for method in methods[fusion]:
            model = build_method(
                method,
                experiment.modalities,
                unimodal=lambda m: experiment.build_unimodal(m, 10, ""),
                inter=lambda mods, inter=inter: inter(mods, 10, ""),
                num_classes=10,
            )
            log_probs = model(batch)
            assert log_probs.shape == (3, 10), (fusion, method)
            assert torch.allclose(log_probs.exp().sum(1), torch.ones(3), atol=1e-5)


def test_avmnist_unimodal_classifiers():
    image, audio = torch.rand(3, 1, 28, 28), torch.rand(3, 1, 112, 112)
    check_trains(avmnist_unimodal_classifier("image", 10), image, 10)
    check_trains(avmnist_unimodal_classifier("audio", 10), audio, 10)
    assert avmnist_unimodal_classifier("image", 10)[1][1].in_features == 48
    assert avmnist_unimodal_classifier("audio", 10)[1][1].in_features == 192
    assert avmnist_unimodal_classifier("image", 7)[1][-1].out_features == 7  # classes come from the caller


def test_avmnist_fusions_match_the_paper():
    batch = {"image": torch.rand(3, 1, 28, 28), "audio": torch.rand(3, 1, 112, 112)}
    lf = avmnist_late_fusion(("image", "audio"), 10)
    assert isinstance(lf, LateFusion) and lf.modalities == ("image", "audio")
    assert lf.head[1].in_features == 240 and lf.head[1].out_features == 100
    check_trains(lf, batch, 10)
    lrtf = avmnist_lrtf(("image", "audio"), 10)
    assert isinstance(lrtf, LowRankTensorFusion)
    assert lrtf.factors["image"].shape == (40, 49, 120)  # rank 40, 48 features + 1, output 120
    assert lrtf.factors["audio"].shape == (40, 193, 120)
    assert lrtf.head[1].in_features == 120
    check_trains(lrtf, batch, 10)


def test_unknown_modalities_are_named():
    with pytest.raises(ValueError, match="unknown AV-MNIST modality 'video'"):
        avmnist_late_fusion(("image", "video"), 10)
    with pytest.raises(ValueError, match="unknown MIMIC modality 'notes'"):
        mimic_unimodal_classifier("notes", 2)


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


@pytest.mark.slow
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
