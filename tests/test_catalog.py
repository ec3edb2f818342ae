"""A user's own experiment found by the catalog: a file anywhere, an entry point, its options."""

from __future__ import annotations

import json
import textwrap

import pytest

from i2m2.cli import main

# A complete experiment as a user writes it: a file anywhere, no i2m2 internals beyond the public API.
# Its data is a lazily read, memory-mapped file (not the in-memory MultimodalDataset), served by a
# plain map-style Dataset: the contract is only "({modality: tensor}, label)" per example.
USER_EXPERIMENT = '''
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from i2m2 import Experiment, Recipe, StageConfig, create_fusion, MLP
from i2m2.data.synthetic import SyntheticTask


class MemmapSplit(Dataset):
    """Reads one example at a time from .npy files (as a user with data larger than memory would)."""

    def __init__(self, folder, split):
        self.x = {m: np.load(folder / f"{split}-{m}.npy", mmap_mode="r") for m in ("left", "right")}
        self.y = np.load(folder / f"{split}-labels.npy", mmap_mode="r")

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {m: torch.from_numpy(np.array(x[i])) for m, x in self.x.items()}, int(self.y[i])


class Splits:
    def __init__(self, folder):
        self.train, self.val, self.test = (MemmapSplit(folder, s) for s in ("train", "val", "test"))
        self.num_classes = 4


def write_data(folder: Path, seed: int) -> None:
    task = SyntheticTask(4, 2, 8, intra=0.3, inter=3.0, noise=0.5, seed=1)
    splits = task.splits(800, 300, 600, seed=seed)
    for name in ("train", "val", "test"):
        part = getattr(splits, name)
        np.save(folder / f"{name}-left.npy", part.inputs["m0"].numpy())
        np.save(folder / f"{name}-right.npy", part.inputs["m1"].numpy())
        np.save(folder / f"{name}-labels.npy", part.labels.numpy())


def my_experiment(hidden: int = 32, folder: str = ".") -> Experiment:
    def load(group, data_dir, seed):
        target = Path(folder) / f"seed{seed}"
        target.mkdir(parents=True, exist_ok=True)
        write_data(target, seed)
        return Splits(target)

    return Experiment(
        name="my-experiment",
        description="two views whose label lives in their joint code",
        modalities=("left", "right"),
        num_classes=4,
        load_data=load,
        build_unimodal=lambda m, classes, group: MLP(8, [hidden], classes),
        build_inter={
            "late": lambda mods, classes, group: create_fusion(
                "late", dict.fromkeys(mods, 8), classes, hidden=hidden
            )
        },
        recipe=Recipe(
            pretrain=StageConfig(optimizer="adam", lr=1e-2, max_epochs=12, batch_size=100),
            finetune=StageConfig(optimizer="adam", lr=3e-3, max_epochs=3, batch_size=100),
        ),
    )
'''


def accuracy(rows: list[dict], method: str) -> float:
    return next(r for r in rows if r["method"] == method)["metrics"]["acc"]["mean"]


@pytest.mark.slow
def test_experiment_file_outside_the_package_runs_through_the_cli(tmp_path, capsys):
    source = tmp_path / "elsewhere" / "my_experiment.py"
    source.parent.mkdir()
    source.write_text(USER_EXPERIMENT)
    out = tmp_path / "run"
    argv = ["run", f"{source}:my_experiment", "--hidden", "24", "--folder", str(tmp_path / "data")]
    assert main([*argv, "--seeds", "1", "--out", str(out)]) == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert [r["method"] for r in rows] == ["unimodal:left", "unimodal:right", "intra", "inter", "i2m2"]
    # The label lives only in the joint code: fusion finds it, the product of unimodal experts cannot.
    assert accuracy(rows, "inter") > 0.7 and accuracy(rows, "i2m2") > 0.7
    assert accuracy(rows, "intra") < accuracy(rows, "i2m2") - 0.25
    assert results["experiment"] == "my-experiment"
    assert "| i2m2 |" in capsys.readouterr().out


def test_entry_point_experiments_are_listed_and_run(tmp_path, monkeypatch, capsys):
    """Another package publishes an experiment in the ``i2m2.experiments`` entry-point group."""
    package = tmp_path / "site"
    (package / "their_pkg").mkdir(parents=True)
    (package / "their_pkg" / "__init__.py").write_text(USER_EXPERIMENT)
    info = package / "their_pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: their-pkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[i2m2.experiments]\ntheirs = their_pkg:my_experiment\n")
    monkeypatch.syspath_prepend(str(package))
    assert main(["experiments"]) == 0
    listed = capsys.readouterr().out
    assert "theirs" in listed and "their_pkg:my_experiment" in listed
    argv = ["run", "theirs", "--folder", str(tmp_path / "data"), "--print-config"]
    assert main(argv) == 0
    assert "hidden: 32" in capsys.readouterr().out


def test_factory_options_and_unknown_file(tmp_path, capsys):
    source = tmp_path / "exp.py"
    source.write_text(textwrap.dedent(USER_EXPERIMENT))
    assert main(["run", f"{source}:my_experiment", "--hidden", "many"]) == 2
    assert 'key "hidden"' in capsys.readouterr().err
    assert main(["run", f"{source}:nothing_here"]) == 2
    assert "no 'nothing_here'" in capsys.readouterr().err
