"""MIMIC-III fixtures: MultiBench's ``im.pk`` content, pickled as the real file is."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

# Rows of adm_labels_all and the mortality class MultiBench's rule gives them (column 0 is not used).
MORTALITY_ROWS = [
    ([0, 0, 0, 0, 0, 0], 0),
    ([1, 0, 0, 0, 0, 0], 0),
    ([0, 1, 0, 0, 0, 0], 1),
    ([0, 1, 1, 1, 1, 1], 1),
    ([0, 0, 1, 1, 0, 0], 2),
    ([0, 0, 0, 1, 0, 1], 3),
    ([0, 0, 0, 0, 1, 1], 4),
    ([0, 0, 0, 0, 0, 1], 5),
    ([1, 0, 0, 0, 0, 2], 5),
]


def make_arrays(n: int = 50, seed: int = 0) -> dict[str, np.ndarray]:
    """MultiBench's im.pk content: float64 features, float labels, int ICD-9 indicators.

    ``ep_tdata[:, :, 0]`` holds the row number at every step, so rows can be told apart after z-scoring.
    """
    rng = np.random.default_rng(seed)
    series = rng.normal(3.0, 2.0, (n, 24, 12))
    series[:, :, 0] = np.arange(n)[:, None]
    adm = np.array([MORTALITY_ROWS[i % len(MORTALITY_ROWS)][0] for i in range(n)], dtype=np.float64)
    adm = np.concatenate([adm, rng.normal(size=(n, 2))], axis=1)  # real files have extra columns
    return {
        "adm_features_all": rng.normal(50.0, 10.0, (n, 5)),
        "ep_tdata": series,
        "adm_labels_all": adm,
        "y_icd9": rng.integers(0, 2, (n, 20)),
    }


def write_pickle(path: Path, arrays: dict, protocol: int = pickle.DEFAULT_PROTOCOL) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(arrays, f, protocol=protocol)
    return path
