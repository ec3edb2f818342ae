"""A real run of the ``features`` route on tiny data, trained once per test session for every test here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from i2m2.catalog import ExperimentRef
from i2m2.orchestration.comparison import run_experiment

CLASSES = 3


def write_features(folder: Path, n: int = 240, seed: int = 0) -> None:
    """``train/val/test.npz`` plus a held-aside ``new.npz``: ``a`` (N, 2, 3) on a scale far from standard
    (so forgetting the training statistics shows), ``b`` (N, 4); the label shows in both."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, size in (("train", n), ("val", n // 3), ("test", n // 3), ("new", n // 4)):
        labels = np.arange(size) % CLASSES
        a = 100.0 + 10.0 * (rng.normal(size=(size, 2, 3)) + 2.0 * labels[:, None, None])
        b = rng.normal(size=(size, 4)) + labels[:, None] * 1.5
        np.savez(folder / f"{split}.npz", a=a, b=b.astype(np.float32), labels=labels)


@pytest.fixture(scope="session")
def features_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run folder, data folder) of a two-seed comparison with late and null-token fusion."""
    root = tmp_path_factory.mktemp("inference")
    data = root / "data"
    write_features(data)
    (data / "new.npz").rename(root / "new.npz")
    run_experiment(
        ExperimentRef.of("features", data_dir=str(data), hidden=16),
        root / "run",
        seeds=2,
        max_epochs=4,
        data_dir=data,
        fusion=["late", "null-token"],
        methods=["unimodal:a", "i2m2[late]", "i2m2[null-token]"],
        epoch_progress=False,
    )
    return root / "run", data
