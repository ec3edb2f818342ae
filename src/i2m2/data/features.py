"""Per-modality feature arrays in ``.npz`` files: the route for any data that has been turned into vectors.

Layout under ``data_dir``::

    train.npz   one array per modality, (N, ...) numeric, plus ``labels`` (N,) integers 0..C-1
    val.npz     optional; without it a seeded 10% of train becomes validation
    test.npz

Every file holds the same modality names with the same per-example shapes; arrays are flattened to
vectors, cast to float32 and standardized with the mean and standard deviation of the *training* split
only (nothing about validation or test leaks into the model). Embeddings from any backbone fit here.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from i2m2.data.multimodal_dataset import DataSplits, MultimodalDataset, split_by_fraction
from i2m2.errors import DataError

LABELS = "labels"
VAL_FRACTION = 0.1


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of one file; a :class:`DataError` naming the file for anything unreadable."""
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected arrays per modality plus '{LABELS}')")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{path}: not a readable .npz file ({err})") from err
    if LABELS not in arrays:
        raise DataError(f"{path}: no '{LABELS}' array; found {sorted(arrays)}")
    if len(arrays) < 2:
        raise DataError(f"{path}: expected at least one modality array besides '{LABELS}'")
    labels = arrays[LABELS]
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(
            f"{path}: '{LABELS}' must be integers of shape (N,), got {labels.dtype} {labels.shape}"
        )
    if len(labels) and labels.min() < 0:
        raise DataError(f"{path}: '{LABELS}' must be >= 0, found {labels.min()}")
    for name, array in arrays.items():
        if len(array) != len(labels):
            raise DataError(f"{path}: '{name}' has {len(array)} rows, '{LABELS}' has {len(labels)}")
        if name != LABELS:
            if array.dtype.kind not in "iuf" or array.ndim < 2:
                raise DataError(
                    f"{path}: '{name}' must be numeric of shape (N, ...), got {array.dtype} {array.shape}"
                )
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise DataError(f"{path}: '{name}' contains NaN or infinite values")
    return arrays


def feature_layout(data_dir: Path) -> tuple[dict[str, int], int]:
    """Modality -> flattened size (file order) and the number of classes, read from the files."""
    files = [data_dir / f"{split}.npz" for split in ("train", "val", "test")]
    arrays = {f.stem: read_npz(f) for f in files if f.stem != "val" or f.is_file()}
    train = arrays["train"]
    dims = {m: int(np.prod(a.shape[1:])) for m, a in train.items() if m != LABELS}
    for split, found in arrays.items():
        got = {m: int(np.prod(a.shape[1:])) for m, a in found.items() if m != LABELS}
        if got != dims:
            raise DataError(f"{data_dir / (split + '.npz')}: modalities {got} differ from train.npz's {dims}")
    classes = 1 + max(int(a[LABELS].max()) for a in arrays.values() if len(a[LABELS]))
    if classes < 2:
        raise DataError(f"{data_dir}: labels hold a single class; expected at least two")
    return dims, classes


def load_features(data_dir: Path, seed: int, num_classes: int) -> DataSplits:
    """Train/val/test splits of standardized float32 vectors (see the module docstring)."""
    data_dir = Path(data_dir)
    train_arrays = read_npz(data_dir / "train.npz")
    modalities = [m for m in train_arrays if m != LABELS]
    mean = {
        m: train_arrays[m].reshape(len(train_arrays[m]), -1).mean(0, dtype=np.float64) for m in modalities
    }
    std = {m: train_arrays[m].reshape(len(train_arrays[m]), -1).std(0, dtype=np.float64) for m in modalities}

    def dataset(arrays: dict[str, np.ndarray]) -> MultimodalDataset:
        inputs = {}
        for m in modalities:
            x = arrays[m].reshape(len(arrays[m]), -1).astype(np.float64)
            x = (x - mean[m]) / np.where(std[m] > 0, std[m], 1.0)  # constant features stay 0
            inputs[m] = torch.from_numpy(x.astype(np.float32))
        return MultimodalDataset(inputs, torch.from_numpy(arrays[LABELS].astype(np.int64)))

    train = dataset(train_arrays)
    if (data_dir / "val.npz").is_file():
        val = dataset(read_npz(data_dir / "val.npz"))
    else:
        train, val = split_by_fraction(train, VAL_FRACTION, seed=seed)
    test = dataset(read_npz(data_dir / "test.npz"))
    return DataSplits(train, val, test, num_classes)
