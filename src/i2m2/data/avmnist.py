"""AV-MNIST in MultiBench's on-disk layout: PCA-degraded MNIST digits paired with noisy spoken digits.

Layout under ``root`` (as MultiBench's ``datasets/avmnist/get_data.py`` reads it)::

    image/train_data.npy  image/test_data.npy    (N, 784) or (N, 28, 28), values 0..255
    audio/train_data.npy  audio/test_data.npy    (N, 112, 112) or (N, 12544) spectrograms, values 0..255
    train_labels.npy      test_labels.npy        (N,) integers 0..9

Both modalities are divided by 255 and get a channel axis: ``image`` (N, 1, 28, 28) and ``audio``
(N, 1, 112, 112), float32. Validation is the *last* rows of the training files (5,000 of 60,000 in the
real data, the same proportion for files of any other size); the test files are the test split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from i2m2.data.multimodal_dataset import DataSplits, MultimodalDataset
from i2m2.errors import DataError

NUM_CLASSES = 10
IMAGE_SIZE = 28
AUDIO_SIZE = 112
VAL_FRACTION = 5000 / 60000
SLACK = 0.01 * 255  # PCA reconstructions may overshoot 0..255 by rounding; garbage far beyond is refused
_CHUNK = 2048  # rows converted at a time, so a 3 GB float64 file never needs a second full copy


def load_avmnist(root: Path, seed: int = 0, val_fraction: float = VAL_FRACTION) -> DataSplits:
    """Read the six files under ``root`` into train/val/test splits with modalities ``image`` and ``audio``.

    Args:
        root: the folder holding ``image/``, ``audio/`` and the two label files.
        seed: unused; the split is fixed (the last rows of the training files), as in MultiBench, so
            every seed of a comparison sees the same validation and test sets.
        val_fraction: share of the training rows, taken from the end, used for validation.

    Raises:
        DataError: a missing or corrupt file, a wrong shape or dtype, NaN/inf values, values outside
            0..255 (1% slack), labels outside 0..9, or files of one split disagreeing on the number of
            rows; the message names the file.
    """
    del seed
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (expected the AV-MNIST folder with image/ and audio/)")
    splits = {name: _load_split(root, name) for name in ("train", "test")}
    image, audio, labels = splits["train"]
    n = len(labels)
    n_val = max(1, round(n * val_fraction))
    if n - n_val < 1:
        raise DataError(
            f"{root / 'train_labels.npy'}: {n} training rows; need at least 2 (train + validation)"
        )
    cut = n - n_val
    train = MultimodalDataset({"image": image[:cut], "audio": audio[:cut]}, labels[:cut])
    val = MultimodalDataset({"image": image[cut:], "audio": audio[cut:]}, labels[cut:])
    image, audio, labels = splits["test"]
    test = MultimodalDataset({"image": image, "audio": audio}, labels)
    return DataSplits(train, val, test, NUM_CLASSES, preprocessing=avmnist_preprocessing())


def avmnist_preprocessing() -> dict[str, Any]:
    """What :func:`load_avmnist` does to raw rows, as plain values saved with each job: the accepted raw
    shapes, the 0..255 range, the /255 scaling and the channel axis; and where ``i2m2 predict`` finds the
    arrays in a folder of this layout (``--split NAME`` reads ``image/NAME_data.npy``, ...)."""

    def modality(size: int) -> dict[str, Any]:
        flat, square = [size * size], [size, size]
        return {
            "shape": flat if size == IMAGE_SIZE else square,
            "also_shapes": [square if size == IMAGE_SIZE else flat, [1, size, size]],
            "dtype": "float32",
            "bounds": [-SLACK, 255 + SLACK],
            "standardize": {"scale": [255.0], "mean": [0.0], "std": [1.0]},
            "model_shape": [1, size, size],
        }

    return {
        "inputs": {"image": modality(IMAGE_SIZE), "audio": modality(AUDIO_SIZE)},
        "classes": [str(c) for c in range(NUM_CLASSES)],
        "reader": {
            "kind": "npy-files",
            "modalities": {"image": "image/{split}_data.npy", "audio": "audio/{split}_data.npy"},
            "labels": "{split}_labels.npy",
        },
    }


def _load_split(root: Path, split: str) -> tuple[Tensor, Tensor, Tensor]:
    image_path = root / "image" / f"{split}_data.npy"
    audio_path = root / "audio" / f"{split}_data.npy"
    labels_path = root / f"{split}_labels.npy"
    image = _load_images(image_path, IMAGE_SIZE, "images (N, 784) or (N, 28, 28)")
    audio = _load_images(audio_path, AUDIO_SIZE, "spectrograms (N, 112, 112) or (N, 12544)")
    labels = _load_labels(labels_path)
    counts = {image_path: len(image), audio_path: len(audio), labels_path: len(labels)}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{p} has {n}" for p, n in counts.items())
        raise DataError(f"{split} files disagree on the number of rows: {listed}")
    if len(labels) == 0:
        raise DataError(f"{labels_path}: no rows")
    return image, audio, labels


def _open_npy(path: Path, expected: str) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected {expected})")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as err:  # truncated, not .npy, object arrays (need pickle), ...
        raise DataError(f"{path}: not a readable .npy file ({err}); expected {expected}") from err
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path}: expected a single .npy array ({expected}), got {type(array).__name__}")
    return array


def _load_images(path: Path, size: int, expected: str) -> Tensor:
    """(N, size*size), (N, size, size) or (N, 1, size, size), numeric -> float32 (N, 1, size, size) / 255."""
    array = _open_npy(path, expected)
    per_example = array.shape[1:]
    if per_example not in ((size * size,), (size, size), (1, size, size)):
        raise DataError(f"{path}: expected {expected}, got shape {array.shape}")
    if array.dtype.kind not in "uif":
        raise DataError(f"{path}: expected a numeric array, got dtype {array.dtype}")
    out = torch.empty((len(array), 1, size, size), dtype=torch.float32)
    for start in range(0, len(array), _CHUNK):
        try:
            chunk = np.array(array[start : start + _CHUNK], dtype=np.float32)
        except Exception as err:  # the memory map is shorter than the header says
            raise DataError(f"{path}: truncated or corrupt ({err})") from err
        if not np.isfinite(chunk).all():
            raise DataError(f"{path}: contains NaN or infinite values (expected {expected})")
        low, high = float(chunk.min(initial=0.0)), float(chunk.max(initial=0.0))
        if low < -SLACK or high > 255 + SLACK:  # e.g. 1e30, or negative values
            raise DataError(
                f"{path}: values {low:g}..{high:g} outside the format's range 0..255 (expected {expected})"
            )
        out[start : start + len(chunk)] = torch.from_numpy(chunk.reshape(-1, 1, size, size)) / 255.0
    return out


def _load_labels(path: Path) -> Tensor:
    expected = f"integer labels 0..{NUM_CLASSES - 1} of shape (N,)"
    array = _open_npy(path, expected)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise DataError(f"{path}: expected {expected}, got shape {array.shape}")
    if array.dtype.kind not in "uif":
        raise DataError(f"{path}: expected {expected}, got dtype {array.dtype}")
    values = np.asarray(array)
    if values.dtype.kind == "f" and not (np.isfinite(values).all() and (values == np.round(values)).all()):
        raise DataError(f"{path}: expected {expected}, found NaN, infinite or non-integer values")
    if len(values) and (values.min() < 0 or values.max() >= NUM_CLASSES):
        raise DataError(f"{path}: expected {expected}, got values {values.min()}..{values.max()}")
    return torch.from_numpy(values.astype(np.int64))
