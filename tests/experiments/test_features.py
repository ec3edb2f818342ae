"""The ``features`` experiment: any number of modalities from npz files, several fusions, bad files named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from i2m2.cli import main
from i2m2.data.synthetic import SyntheticTask


def accuracy(rows: list[dict], method: str) -> float:
    return next(r for r in rows if r["method"] == method)["metrics"]["acc"]["mean"]


def write_features(folder: Path, modalities: int, seed: int = 0) -> None:
    """npz files as a user would export them: float64 arrays of differing widths and scales."""
    folder.mkdir(parents=True, exist_ok=True)
    task = SyntheticTask(3, modalities, 6, intra=0.8, inter=2.5, noise=0.7, seed=2)
    splits = task.splits(900, 300, 600, seed=seed)
    rng = np.random.default_rng(seed)
    scale = {m: 10.0 ** rng.integers(-2, 3) for m in splits.train.inputs}
    for name in ("train", "val", "test"):
        part = getattr(splits, name)
        arrays = {
            f"view{i}": part.inputs[m].numpy().astype(np.float64) * scale[m] + 5
            for i, m in enumerate(part.inputs)
        }
        np.savez(folder / f"{name}.npz", labels=part.labels.numpy(), **arrays)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("modalities", "extra"), [(2, []), (4, ["--all-subsets"]), (3, ["--fusion", "null-token"])]
)
def test_features_route_on_npz_files(tmp_path, modalities, extra, capsys):
    write_features(tmp_path / "data", modalities)
    out = tmp_path / "run"
    argv = ["run", "features", "--data-dir", str(tmp_path / "data"), "--seeds", "1", "--max-epochs", "15"]
    assert main([*argv, *extra, "--out", str(out)]) == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert results["config"]["modalities"] == [f"view{i}" for i in range(modalities)]
    assert results["config"]["all_subsets"] == ("--all-subsets" in extra)
    assert len(rows) == modalities + 4  # logistic, each view, intra, inter, i2m2
    assert rows[0]["method"] == "logistic" and accuracy(rows, "logistic") > 0.4  # chance is 1/3
    assert accuracy(rows, "i2m2") > max(accuracy(rows, f"unimodal:view{i}") for i in range(modalities)) + 0.05
    if "--all-subsets" in extra:  # one inter expert per subset of two or more views: 6 + 4 + 1
        predictions = np.load(out / "predictions" / "all__inter__seed0.npz")
        assert len([k for k in predictions.files if k.startswith("expert__")]) == 11
    if "null-token" in extra:  # one network for every subset: withholding a view still leaves it an answer
        predictions = np.load(out / "predictions" / "all__inter__seed0.npz")
        alone = (predictions["withheld__view0"].argmax(1) == predictions["labels"]).mean()
        assert alone > 0.45  # chance is 1/3; the other two views still carry the label


@pytest.mark.slow
def test_features_route_with_several_fusions(tmp_path, capsys):
    write_features(tmp_path / "data", 2)
    argv = ["run", "features", "--data-dir", str(tmp_path / "data"), "--seeds", "1", "--max-epochs", "2"]
    argv += [
        "--fusion",
        "early",
        "lrtf",
        "--methods",
        "inter[early]",
        "i2m2[lrtf]",
        "--out",
        str(tmp_path / "r"),
    ]
    assert main(argv) == 0, capsys.readouterr().err
    rows = json.loads((tmp_path / "r" / "results.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["inter[early]", "i2m2[lrtf]"]


def test_features_bad_files_are_named(tmp_path, capsys):
    write_features(tmp_path / "data", 2)
    np.savez(tmp_path / "data" / "test.npz", view0=np.zeros((3, 6)), labels=np.zeros(3, dtype=np.int64))
    code = main(["run", "features", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "test.npz" in err and len(err.strip().splitlines()) == 1
