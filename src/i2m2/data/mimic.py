"""MIMIC-III as MultiBench prepares it: one pickle ``im.pk`` holding a dict of numpy arrays.

Keys: ``adm_features_all`` (N, 5) static features, ``ep_tdata`` (N, 24, 12) hourly measurements,
``adm_labels_all`` (N, >= 6) mortality indicators, ``y_icd9`` (N, 20) ICD-9 group indicators. Other keys are
ignored. The pickle is read with a restricted unpickler (:mod:`i2m2.data.safe_pickle`): a pickle can run
code, so only builtin containers and numpy arrays are admitted.

Tasks (MultiBench ``datasets/mimic/get_data.py``):

* ``mortality``, 6 classes: 1 if column 1 of ``adm_labels_all`` is > 0 (death within 1 day), else 2 if
  column 2 > 0 (2 days), 3 (3 days), 4 (1 week), 5 (1 year), else 0 (later or never). The first positive
  column wins when several are set.
* ``icd9_140_239`` (neoplasms): ``y_icd9[:, 1]``; ``icd9_460_519`` (respiratory): ``y_icd9[:, 7]``.

Preprocessing: NaN and inf become 0, then every feature is z-scored with the mean and standard deviation
of the **training split only**; a constant feature is left unscaled. MultiBench computes these statistics
over all rows, validation and test included, which leaks test information into training; we do not.

Split: a seeded shuffle; validation = the first N // 10 rows, test = the next N // 10, train = the rest
(28,970 / 3,621 / 3,621 for the real file, as in the paper's Appendix A.3).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from i2m2.data.multimodal_dataset import DataSplits, MultimodalDataset
from i2m2.data.safe_pickle import safe_load_pickle
from i2m2.errors import DataError

FILE_NAME = "im.pk"
# task -> number of classes
TASKS: dict[str, int] = {"mortality": 6, "icd9_140_239": 2, "icd9_460_519": 2}
_ICD9_COLUMN = {"icd9_140_239": 1, "icd9_460_519": 7}
_SHAPES: dict[str, tuple[int | None, ...]] = {
    "adm_features_all": (5,),
    "ep_tdata": (24, 12),
    "adm_labels_all": (None,),  # at least 6 columns, checked below
    "y_icd9": (20,),
}


def resolve_mimic_file(path: Path) -> Path:
    """``path`` itself if it is a file, else ``path/im.pk``."""
    path = Path(path)
    return path / FILE_NAME if path.is_dir() else path


def load_mimic(path: Path, task: str, seed: int = 0) -> DataSplits:
    """The splits of one task, with modalities ``static`` (N, 5) and ``timeseries`` (N, 24, 12), float32.

    Args:
        path: ``im.pk`` or the folder holding it.
        task: ``mortality``, ``icd9_140_239`` or ``icd9_460_519``.
        seed: seed of the shuffle that assigns rows to validation, test and train.

    Raises:
        DataError: missing/corrupt file, a forbidden object in the pickle, missing keys, or arrays of the
            wrong shape or dtype; the message names the file and what was expected.
    """
    if task not in TASKS:
        raise ValueError(f"unknown MIMIC task '{task}'; expected one of {list(TASKS)}")
    file = resolve_mimic_file(path)
    arrays = _read(file)
    static = _clean(arrays["adm_features_all"])
    series = _clean(arrays["ep_tdata"])
    labels = task_labels(arrays, task, file)

    n = len(labels)
    n_val = n_test = n // 10
    if n_val < 1:
        raise DataError(f"{file}: {n} rows; need at least 10 for the 80/10/10 split")
    order = np.random.default_rng(seed).permutation(n)
    parts = {"val": order[:n_val], "test": order[n_val : n_val + n_test], "train": order[n_val + n_test :]}

    train = parts["train"]
    static_mean, static_std = _stats(static[train], axis=0)
    series_mean, series_std = _stats(series[train], axis=(0, 1))
    static = (static - static_mean) / static_std
    series = (series - series_mean) / series_std

    def subset(rows: np.ndarray) -> MultimodalDataset:
        return MultimodalDataset(
            {
                "static": torch.from_numpy(static[rows].astype(np.float32)),
                "timeseries": torch.from_numpy(series[rows].astype(np.float32)),
            },
            torch.from_numpy(labels[rows]),
        )

    stats = {"static": (static_mean, static_std), "timeseries": (series_mean, series_std)}
    return DataSplits(
        subset(parts["train"]),
        subset(parts["val"]),
        subset(parts["test"]),
        TASKS[task],
        preprocessing=mimic_preprocessing(stats),
    )


def mimic_preprocessing(stats: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """What :func:`load_mimic` does to raw records, as plain values saved with each job: NaN/inf -> 0, then
    the training split's mean and std (per static feature; per measurement, over all hours); and which
    ``im.pk`` key holds each modality, so ``i2m2 predict`` reads that file as it is."""
    shapes = {"static": _SHAPES["adm_features_all"], "timeseries": _SHAPES["ep_tdata"]}
    inputs = {
        m: {
            "shape": list(shapes[m]),
            "dtype": "float32",
            "impute": 0.0,
            "standardize": {"scale": [1.0], "mean": mean.tolist(), "std": std.tolist()},
            "model_shape": list(shapes[m]),
        }
        for m, (mean, std) in stats.items()
    }
    reader = {
        "kind": "pickle-arrays",
        "file": FILE_NAME,
        "modalities": {"static": "adm_features_all", "timeseries": "ep_tdata"},
    }
    return {"inputs": inputs, "reader": reader}


def task_labels(arrays: dict[str, np.ndarray], task: str, file: Path | str = FILE_NAME) -> np.ndarray:
    """The int64 labels of ``task`` (see the module docstring for the rules)."""
    if task == "mortality":
        adm = arrays["adm_labels_all"]
        if not np.isfinite(adm[:, 1:6]).all():
            raise DataError(f"{file}: adm_labels_all columns 1-5 contain NaN or infinite values")
        positive = adm[:, 1:6] > 0  # (N, 5): death within 1 day, 2 days, 3 days, 1 week, 1 year
        first = positive.argmax(axis=1) + 1
        return np.where(positive.any(axis=1), first, 0).astype(np.int64)
    column = arrays["y_icd9"][:, _ICD9_COLUMN[task]]
    if not np.isin(column, (0, 1)).all():
        bad = sorted({float(v) for v in column[~np.isin(column, (0, 1))][:5]})
        raise DataError(f"{file}: y_icd9 column {_ICD9_COLUMN[task]} ({task}) must hold 0/1, found {bad}")
    return column.astype(np.int64)


def _read(file: Path) -> dict[str, np.ndarray]:
    data: Any = safe_load_pickle(file)
    if not isinstance(data, dict):
        raise DataError(
            f"{file}: expected a dict of arrays with keys {sorted(_SHAPES)}, got {type(data).__name__}"
        )
    missing = sorted(set(_SHAPES) - set(data))
    if missing:
        raise DataError(
            f"{file}: missing keys {missing}; expected {sorted(_SHAPES)}, found {sorted(map(str, data))}"
        )
    arrays: dict[str, np.ndarray] = {}
    for key, shape in _SHAPES.items():
        value = data[key]
        if not isinstance(value, np.ndarray):
            raise DataError(f"{file}: '{key}' must be a numpy array, got {type(value).__name__}")
        if value.dtype.kind not in "buif":
            raise DataError(f"{file}: '{key}' must be numeric, got dtype {value.dtype}")
        ok = value.ndim == len(shape) + 1 and all(
            e is None or e == g for e, g in zip(shape, value.shape[1:], strict=True)
        )
        if not ok:
            want = ", ".join("*" if e is None else str(e) for e in shape)
            raise DataError(f"{file}: '{key}' must have shape (N, {want}), got {value.shape}")
        arrays[key] = value
    if arrays["adm_labels_all"].shape[1] < 6:
        raise DataError(
            f"{file}: 'adm_labels_all' needs at least 6 columns, got {arrays['adm_labels_all'].shape}"
        )
    rows = {k: len(v) for k, v in arrays.items()}
    if len(set(rows.values())) > 1:
        raise DataError(f"{file}: arrays disagree on the number of rows: {rows}")
    return arrays


def _clean(x: np.ndarray) -> np.ndarray:
    """float64 copy with NaN and +-inf replaced by 0 (MultiBench's imputation)."""
    x = np.array(x, dtype=np.float64)
    x[~np.isfinite(x)] = 0.0
    return x


def _stats(x: np.ndarray, axis: int | tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=axis)
    std = x.std(axis=axis)
    return mean, np.where(std > 0, std, 1.0)
