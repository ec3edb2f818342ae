"""A tiny experiment for the tuning tests: two 4-d modalities, 3 classes, SGD, a few epochs.

``nan_test`` replaces the test split by one whose inputs are NaN and whose every read fails, to show that
tuning never reads it. Usable as ``tests/tuning/tiny.py:tiny`` from the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from i2m2 import MLP, Experiment, MultimodalDataset, Recipe, StageConfig, create_fusion
from i2m2.data.synthetic import SyntheticTask

DIM = 4


class Unreadable(MultimodalDataset):
    """A test split of NaNs that fails on any read of an example."""

    def __getitem__(self, index: Any) -> Any:
        raise AssertionError("the test split was read")

    def __getitems__(self, index: Any) -> Any:
        raise AssertionError("the test split was read")


@dataclass
class Splits:
    train: MultimodalDataset
    val: MultimodalDataset
    test: MultimodalDataset
    num_classes: int


def tiny(nan_test: bool = False, epochs: int = 3) -> Experiment:
    """Tiny synthetic data (both kinds of dependence), MLP experts, SGD."""

    def load(group: str, data_dir: Path | None, seed: int) -> Any:
        task = SyntheticTask(3, 2, DIM, intra=1.5, inter=2.0, noise=0.7, seed=0)
        splits = task.splits(120, 60, 60, seed=seed)
        if not nan_test:
            return splits
        test = splits.test
        nans = {m: torch.full_like(x, float("nan")) for m, x in test.inputs.items()}
        return Splits(splits.train, splits.val, Unreadable(nans, test.labels), 3)

    stage = StageConfig(optimizer="sgd", lr=0.1, momentum=0.9, max_epochs=epochs, batch_size=32)
    return Experiment(
        name="tiny",
        description="tiny synthetic data for tuning tests",
        modalities=("m0", "m1"),
        num_classes=3,
        load_data=load,
        build_unimodal=lambda m, classes, group: MLP(DIM, [8], classes),
        build_inter={
            "lf": lambda mods, classes, group: create_fusion(
                "late", dict.fromkeys(mods, DIM), classes, hidden=8
            )
        },
        recipe=Recipe(pretrain=stage, finetune=stage),
    )
