"""Per-modality feature arrays in ``.npz`` files: the route for any data that has been turned into vectors.

Layout under ``data_dir``::

    train.npz   one array per modality, (N, ...) numeric, plus ``labels`` (N,) integers 0..C-1
    val.npz     optional; without it a seeded 10% of train becomes validation
    test.npz

Every file holds the same modality names (identifiers: letters, digits, underscores) with the same
per-example shapes. C is the number of classes of the training split: its labels must be 0..C-1 with
every class present (labels 0, 3, 6 are refused, not read as seven classes); validation and test labels
must lie in 0..C-1 but need not hold every class. Arrays are flattened to vectors, cast to float32 and
standardized with the mean and standard deviation of the *training* split only (nothing about
validation or test leaks into the model). The statistics are taken in float64 on values divided by
each feature's largest magnitude, so values up to float64's limit standardize without overflow; a value
whose standardized form does not fit float32 is refused, naming the file, modality and row. Embeddings
from any backbone fit here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from i2m2.data.multimodal_dataset import DataSplits, MultimodalDataset, split_by_fraction
from i2m2.data.safe_npz import read_npz_arrays
from i2m2.errors import DataError
from i2m2.models.validation import check_modality_names

LABELS = "labels"
VAL_FRACTION = 0.1
FLOAT32_MAX = float(np.finfo(np.float32).max)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of one file; a :class:`DataError` naming the file for anything unreadable."""
    arrays = read_npz_arrays(path, f"arrays per modality plus '{LABELS}'")
    if LABELS not in arrays:
        raise DataError(f"{path}: no '{LABELS}' array; found {sorted(arrays)}")
    if len(arrays) < 2:
        raise DataError(f"{path}: expected at least one modality array besides '{LABELS}'")
    try:
        check_modality_names([name for name in arrays if name != LABELS], str(path))
    except ValueError as err:
        raise DataError(str(err)) from None
    labels = arrays[LABELS]
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(
            f"{path}: '{LABELS}' must be integers of shape (N,), got {labels.dtype} {labels.shape}"
        )
    if len(labels) == 0:
        raise DataError(f"{path}: no examples ('{LABELS}' is empty); expected at least one row per split")
    if len(labels) and labels.min() < 0:
        raise DataError(f"{path}: '{LABELS}' must be >= 0, found {labels.min()} at row {labels.argmin()}")
    for name, array in arrays.items():
        if len(array) != len(labels):
            raise DataError(f"{path}: '{name}' has {len(array)} rows, '{LABELS}' has {len(labels)}")
        if name != LABELS:
            if array.dtype.kind not in "iuf" or array.ndim < 2:
                raise DataError(
                    f"{path}: '{name}' must be numeric of shape (N, ...), got {array.dtype} {array.shape}"
                )
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                row = int(np.flatnonzero(~np.isfinite(array.reshape(len(array), -1)).all(1))[0])
                raise DataError(f"{path}: '{name}' contains NaN or infinite values (first at row {row})")
    return arrays


def feature_layout(data_dir: Path) -> tuple[dict[str, int], int]:
    """Modality -> flattened size (file order) and the number of classes C, read from the files.

    C is one more than the largest training label, after checking that the training labels hold every
    class 0..C-1 (so a stray huge label is refused before anything of its size is allocated) and that
    validation and test labels lie in 0..C-1.
    """
    files = [data_dir / f"{split}.npz" for split in ("train", "val", "test")]
    arrays = {f.stem: read_npz(f) for f in files if f.stem != "val" or f.is_file()}
    train = arrays["train"]
    dims = {m: int(np.prod(a.shape[1:])) for m, a in train.items() if m != LABELS}
    for split, found in arrays.items():
        got = {m: int(np.prod(a.shape[1:])) for m, a in found.items() if m != LABELS}
        if got != dims:
            raise DataError(f"{data_dir / (split + '.npz')}: modalities {got} differ from train.npz's {dims}")
    classes = training_classes(data_dir / "train.npz", train[LABELS])
    for split in ("val", "test"):
        labels = arrays[split][LABELS] if split in arrays else np.zeros(0, dtype=np.int64)
        if len(labels) and int(labels.max()) >= classes:
            row = int(np.argmax(labels >= classes))
            raise DataError(
                f"{data_dir / (split + '.npz')}: '{LABELS}' holds {int(labels[row])} at row {row}, a class "
                f"train.npz does not have; expected integers 0..{classes - 1} (the training split's classes)"
            )
    return dims, classes


def training_classes(path: Path, labels: np.ndarray) -> int:
    """C for training labels that must be exactly the classes 0..C-1, every one present (>= 2 of them)."""
    if len(labels) == 0:
        raise DataError(f"{path}: no examples; expected training rows with '{LABELS}' 0..C-1")
    largest = int(labels.max())
    if largest >= len(labels):  # C classes, each present, need at least C rows: no bincount of a stray label
        row = int(labels.argmax())
        raise DataError(
            f"{path}: '{LABELS}' holds {largest} at row {row}, but {len(labels)} rows can hold at most "
            f"{len(labels)} classes; expected integers 0..C-1 with every class present in train.npz"
        )
    counts = np.bincount(labels.astype(np.int64), minlength=largest + 1)
    missing = np.flatnonzero(counts == 0)
    if len(missing):
        shown = ", ".join(str(c) for c in missing[:10]) + (", ..." if len(missing) > 10 else "")
        raise DataError(
            f"{path}: '{LABELS}' lack class(es) {shown} of 0..{largest} ({len(missing)} missing); expected "
            f"integers 0..C-1 with every class present in train.npz (relabel the classes consecutively)"
        )
    if largest + 1 < 2:
        raise DataError(f"{path}: '{LABELS}' hold a single class; expected at least two (0..C-1, C >= 2)")
    return largest + 1


class Standardizer:
    """Per-feature standardization fitted on the training split, safe for any finite float64 values.

    Each feature is first divided by its largest magnitude in the training split, so the sums behind the
    mean and standard deviation cannot overflow (a plain float64 mean of values near 1e300 is inf, and
    ``(x - inf) / inf`` turned a whole modality into zeros or NaN). Constant features map to 0.
    """

    def __init__(self, train: np.ndarray) -> None:
        x = train.reshape(len(train), -1).astype(np.float64)
        scale = np.abs(x).max(0) if len(x) else np.ones(x.shape[1])
        self.scale = np.where(scale > 0, scale, 1.0)
        scaled = x / self.scale
        self.mean = scaled.mean(0) if len(x) else np.zeros(x.shape[1])
        std = scaled.std(0) if len(x) else np.ones(x.shape[1])
        self.std = np.where(std > 0, std, 1.0)

    def __call__(self, array: np.ndarray, path: Path, modality: str) -> np.ndarray:
        """``array`` standardized as float32; a :class:`DataError` for a value float32 cannot hold."""
        x = array.reshape(len(array), -1).astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            z = (x / self.scale - self.mean) / self.std
        fits = np.isfinite(z) & (np.abs(z) <= FLOAT32_MAX)
        if not fits.all():
            row, column = (int(i[0]) for i in np.nonzero(~fits))
            raise DataError(
                f"{path}: modality '{modality}' row {row} holds {x[row, column]:.3g}, which standardized "
                f"with train.npz's mean and std is {z[row, column]:.3g}, beyond float32's range "
                f"(±{FLOAT32_MAX:.2g}); expected values on the training split's scale (rescale the "
                "modality or drop the row)"
            )
        return z.astype(np.float32)


def load_features(data_dir: Path, seed: int, num_classes: int) -> DataSplits:
    """Train/val/test splits of standardized float32 vectors (see the module docstring)."""
    data_dir = Path(data_dir)
    train_arrays = read_npz(data_dir / "train.npz")
    modalities = [m for m in train_arrays if m != LABELS]
    standardize = {m: Standardizer(train_arrays[m]) for m in modalities}

    def dataset(arrays: dict[str, np.ndarray], path: Path) -> MultimodalDataset:
        inputs = {m: torch.from_numpy(standardize[m](arrays[m], path, m)) for m in modalities}
        return MultimodalDataset(inputs, torch.from_numpy(arrays[LABELS].astype(np.int64)))

    train = dataset(train_arrays, data_dir / "train.npz")
    if (data_dir / "val.npz").is_file():
        val = dataset(read_npz(data_dir / "val.npz"), data_dir / "val.npz")
    else:
        train, val = split_by_fraction(train, VAL_FRACTION, seed=seed)
    test = dataset(read_npz(data_dir / "test.npz"), data_dir / "test.npz")
    return DataSplits(
        train, val, test, num_classes, preprocessing=feature_preprocessing(train_arrays, standardize)
    )


def feature_preprocessing(
    arrays: dict[str, np.ndarray], standardize: dict[str, Standardizer]
) -> dict[str, Any]:
    """The raw shapes and training statistics of each modality, as plain values saved with each job."""
    inputs = {
        m: {
            "shape": list(arrays[m].shape[1:]),
            "dtype": "float32",
            "standardize": {"scale": s.scale.tolist(), "mean": s.mean.tolist(), "std": s.std.tolist()},
        }
        for m, s in standardize.items()
    }
    return {"inputs": inputs}
