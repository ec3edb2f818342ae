"""fastMRI knee experiment end to end on a tiny phantom: every analysis of the paper, the multi-task
objective's class weights from the training split, per-task products, CLI errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from i2m2.catalog import get_experiment
from i2m2.cli.main import main
from i2m2.data.fastmri import FASTMRI_FINDINGS, load_fastmri
from i2m2.data.fastmri_phantom import phantom_max_width, phantom_run_command, write_phantom_dataset
from i2m2.errors import DataError
from i2m2.models.encoders import parameter_count
from i2m2.models.methods import build_method
from i2m2.objectives.multitask import (
    MultiTaskObjective,
    class_weights_from_labels,
)
from i2m2.runs.predictions import load_predictions, predictions_path

SIZE = 32


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_phantom_dataset(tmp_path_factory.mktemp("phantom"), volumes=10, slices=4, size=SIZE, seed=3)


def run_args(phantom: Path, out: Path, *extra: str) -> list[str]:
    return [
        "run", "fastmri-knee", "--data-dir", str(phantom), "--crop", str(SIZE),
        "--max-width", str(phantom_max_width(SIZE)), "--width", "4", "--preset", "cpu",
        "--max-epochs", "1", "--threads", "1", "--out", str(out), *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def runs(phantom: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The main run (3 seeds, for the 3x ensembles) and its four companion runs in sub-folders."""
    run = tmp_path_factory.mktemp("runs") / "fastmri"
    assert main(run_args(phantom, run)) == 0
    assert main(run_args(phantom, run / "rss", "--rss-baseline", "true", "--seeds", "1")) == 0
    wide = ["--architecture", "wrn20-3", "--methods", "unimodal:magnitude", "unimodal:phase", "inter"]
    assert main(run_args(phantom, run / "wrn20-3", *wide, "--seeds", "1")) == 0
    assert (
        main(run_args(phantom, run / "from-scratch", "--from-scratch", "--methods", "i2m2", "--seeds", "1"))
        == 0
    )
    sweep = ["--noise-sweep-db", "10", "-5", "--methods", "inter", "i2m2", "--seeds", "1"]
    assert main(run_args(phantom, run / "noise-sweep", *sweep)) == 0
    assert main(["analyze", str(run)]) == 0
    return run


def read(path: Path) -> str:
    return path.read_text()


@pytest.mark.slow
def test_figure2_has_every_row_per_finding_with_the_rss_baseline_first(runs: Path) -> None:
    results = json.loads(read(runs / "results.json"))
    methods = [r["method"] for r in results["rows"]]
    assert methods == ["unimodal:magnitude", "unimodal:phase", "intra", "inter", "i2m2"]
    metrics = results["rows"][0]["metrics"]
    for finding in FASTMRI_FINDINGS:
        assert len(metrics[f"auroc_{finding}"]["per_seed"]) == 3
        assert 0 <= metrics[f"balanced_acc_{finding}"]["mean"] <= 1
    assert results["config"]["analyses"] == ["fastmri"]  # declared by the experiment: Figures 2-4, ...
    rss = json.loads(read(runs / "rss" / "results.json"))
    assert [r["method"] for r in rss["rows"]] == ["unimodal:rss"]  # RSS is in no product
    table = read(runs / "analysis" / "figure2.md")
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert lines[0].split("|")[2:6] == [f" {f} " for f in FASTMRI_FINDINGS]
    assert [line.split("|")[1].strip() for line in lines[1:]] == ["unimodal:rss", *methods]
    for name in ("figure2.png", "figure2.csv", "figure2_balanced_acc.md", "figure2_balanced_acc.png"):
        assert (runs / "analysis" / name).stat().st_size > 0


@pytest.mark.slow
def test_figure3_averages_the_probabilities_of_models_trained_alone(runs: Path) -> None:
    table = read(runs / "analysis" / "figure3.md")
    for label in ("magnitude + phase", "magnitude + phase + inter", "I2M2"):
        assert f"| {label} |" in table
    for label in ("3x magnitude", "3x phase"):  # 3 seeds: every seed's triple is the same ensemble
        row = next(line for line in table.splitlines() if line.startswith(f"| {label} (one ensemble"))
        assert "± 0.00" not in row and "± n/a" in row
    # Recompute one cell: magnitude + phase, seed 0, by hand from the saved predictions.
    mag, phase = (
        load_predictions(predictions_path(runs, "", m, 0)) for m in ("unimodal:magnitude", "unimodal:phase")
    )
    probs = (np.exp(mag.log_probs[..., 1]) + np.exp(phase.log_probs[..., 1])) / 2
    rows = [line.split(",") for line in read(runs / "analysis" / "figure3.csv").splitlines()[1:]]
    for t, finding in enumerate(FASTMRI_FINDINGS):
        labels = mag.labels[:, t]
        if len(np.unique(labels)) < 2:
            continue
        pos, neg = probs[labels == 1, t], probs[labels == 0, t]
        expected = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
        cell = next(r for r in rows if r[0] == "magnitude + phase" and r[1] == finding)
        assert float(cell[4].split()[0]) == pytest.approx(expected, abs=2e-3)  # float16 predictions


@pytest.mark.slow
def test_figure4_compares_wide_models_with_parameter_counts(runs: Path, phantom: Path) -> None:
    table = read(runs / "analysis" / "figure4.md")
    experiment = get_experiment(
        "fastmri-knee", data_dir=phantom, architecture="wrn20-3", width=4, crop=SIZE,
        max_width=phantom_max_width(SIZE), preset="cpu",
    )  # fmt: skip
    wide = parameter_count(experiment.build_unimodal("magnitude", 2, ""))
    assert f"| WRN-20-3 magnitude | {wide:,} |" in table
    assert "| PreActResNet-18 I2M2 |" in table and (runs / "analysis" / "figure4.png").is_file()


@pytest.mark.slow
def test_table5_and_the_noise_sweep(runs: Path) -> None:
    table5 = read(runs / "analysis" / "table5.md")
    assert "| I2M2 from scratch |" in table5 and "| I2M2 pretrained experts |" in table5
    sweep = load_predictions(predictions_path(runs / "noise-sweep", "", "i2m2", 0))
    clean = load_predictions(predictions_path(runs, "", "i2m2", 0))
    assert sweep.groups is not None and len(sweep.labels) == 3 * len(clean.labels)  # clean, 10 dB, -5 dB
    assert np.array_equal(sweep.labels, np.concatenate([clean.labels] * 3))
    c7 = read(runs / "analysis" / "figureC7.md")
    assert "| clean | 10 dB | -5 dB |" in c7 and "| unimodal:magnitude | acl |" in c7
    for finding in FASTMRI_FINDINGS:
        assert (runs / "analysis" / f"figureC7_{finding}.png").stat().st_size > 0


# --- the multi-task objective within the experiment ------------------------------------------------------


def test_class_weights_come_from_the_training_split(phantom: Path) -> None:
    labels = torch.tensor([[0, 1], [0, 0], [0, 0], [1, 0]])
    expected = torch.tensor([[4 / 6, 4 / 2], [4 / 6, 4 / 2]])  # n / (2 n_c) per task
    assert torch.allclose(class_weights_from_labels(labels), expected)
    kwargs = {"crop": SIZE, "max_width": phantom_max_width(SIZE)}
    experiment = get_experiment("fastmri-knee", data_dir=phantom, split_seed=1, **kwargs)
    train, val, _ = load_fastmri(phantom, 1, modalities=("magnitude", "phase"), **kwargs)
    objective = experiment.objective
    assert isinstance(objective, MultiTaskObjective) and objective.class_weights is not None
    assert torch.allclose(objective.class_weights, class_weights_from_labels(train.labels))
    assert not torch.allclose(objective.class_weights, class_weights_from_labels(val.labels))


def test_the_cpu_preset_defaults_fit_the_default_phantom(tmp_path: Path) -> None:
    root = write_phantom_dataset(tmp_path, volumes=3, slices=1)  # 64x64, the phantom's default size
    experiment = get_experiment("fastmri-knee", data_dir=root, preset="cpu")
    assert "cnn width 8, crop 64, cpu recipe" in experiment.description
    # The paper preset keeps the paper's crop: the error names the file's own sizes and the one command that
    # fits the phantom.
    with pytest.raises(DataError) as error:
        get_experiment("fastmri-knee", data_dir=root)
    message = str(error.value)
    assert re.search(r"crop 320 is larger than the image: the k-space is 128x(68|72|76) ", message), message
    assert "an image of 128x400 once its width is zero-filled to --max-width 400" in message
    assert message.endswith(
        f"simulated phantom (64x64 images): train on it with '{phantom_run_command(root)}'"
    )
    assert phantom_run_command(root) == f"i2m2 run fastmri-knee --data-dir {root} --preset cpu"
    small = write_phantom_dataset(tmp_path / "small", volumes=3, slices=1, size=32)
    with pytest.raises(DataError, match=r"\(32x32 images\): .* --preset cpu --crop 32'$"):
        get_experiment("fastmri-knee", data_dir=small)
    assert "crop 32" in get_experiment("fastmri-knee", data_dir=small, preset="cpu", crop=32).description


def test_the_phantoms_printed_hint_is_the_command_the_docs_give(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["data", "fastmri-phantom", "--out", str(tmp_path / "p"), "--volumes", "3", "--slices", "1"])
        == 0
    )
    printed = capsys.readouterr().out
    hint = phantom_run_command(tmp_path / "p")
    assert f"'train with': '{hint}'" in printed
    docs = (Path(__file__).parents[2] / "docs" / "fastmri.md").read_text()
    assert f"{phantom_run_command('$P')} --seeds 3 --out $RUN" in docs


def test_the_weighted_loss_and_the_product_are_per_finding(phantom: Path) -> None:
    experiment = get_experiment(
        "fastmri-knee", data_dir=phantom, width=4, crop=SIZE, max_width=phantom_max_width(SIZE)
    )
    model = build_method(
        "i2m2",
        experiment.modalities,
        unimodal=lambda m: experiment.build_unimodal(m, 2, ""),
        inter=lambda mods: experiment.build_inter["early"](mods, 2, ""),
        num_classes=2,
        num_tasks=4,
    )
    batch = {m: torch.randn(3, 1, SIZE, SIZE) for m in experiment.modalities}
    log_probs = model(batch)
    assert log_probs.shape == (3, 4, 2)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(3, 4))  # each finding sums to one
    target = torch.tensor([[0, 1, 0, 1], [1, 1, 0, 0], [0, 0, 1, 0]])
    weights = torch.tensor([[1.0, 3.0], [2.0, 1.0], [1.0, 1.0], [0.5, 4.0]])
    loss = MultiTaskObjective(FASTMRI_FINDINGS, weights).loss(log_probs, target)
    by_hand = 0.0
    for t in range(4):
        w = weights[t, target[:, t]]
        by_hand += float(-(w * log_probs[torch.arange(3), t, target[:, t]]).sum() / w.sum())
    assert float(loss) == pytest.approx(by_hand, rel=1e-5)


# --- bad input at the command line: one line, exit status 2 ----------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--crop", "999"], "crop 999 is larger than the image"),
        (["--architecture", "vgg"], "architecture"),
        (["--test-snr-db", "10", "--noise-sweep-db", "0"], "give one of them"),
        (["--methods", "intra"], "unknown method 'intra'"),
    ],
)
def test_bad_run_options_are_one_line_and_exit_2(
    phantom: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], expected: str
) -> None:
    args = run_args(phantom, tmp_path / "run", *extra)
    if extra[0] == "--methods":
        args += ["--rss-baseline", "true"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err


def test_missing_data_dir_and_bad_phantom_size_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "fastmri-knee", "--out", str(tmp_path / "r")]) == 2
    assert "--data-dir" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["run", "fastmri-knee", "--data-dir", str(tmp_path / "empty")]) == 2
    assert "knee_file_list.csv" in capsys.readouterr().err
    assert main(["data", "fastmri-phantom", "--out", str(tmp_path / "p"), "--size", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert "size >= 16" in err and "\n" not in err


def test_the_paper_recipe_fine_tunes_intra_and_i2m2_with_their_own_table_b6_rows():
    from i2m2.experiments.fastmri_knee import PAPER

    intra, i2m2 = PAPER.stage2("intra"), PAPER.stage2("i2m2")
    assert (intra.lr, intra.weight_decay) == (1e-6, 1e-3)  # Table B.6, intra-modality
    assert (i2m2.lr, i2m2.weight_decay) == (1e-6, 1e-2)  # Table B.6, I2M2
