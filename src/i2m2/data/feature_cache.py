"""Features of a frozen backbone, computed once per (backbone, split, modality) and kept next to the data.

Layout: ``DATA_DIR/features/<key>/<split>-<modality>.npy`` with a ``<split>-<modality>.json`` beside it
(``{"key", "backbone", "shape", "dtype"}``). ``key`` is the backbone's :attr:`cache_key` (a hash of its
config, the sizes and mtimes of its weight files, and its pooling settings), so every method and seed
reuses one computation, and a changed backbone gets a fresh folder instead of stale features.

The ``.npy`` is written first and the ``.json`` last, each atomically, so the JSON marks a finished
file. On reading, a missing JSON, a header or shape that disagrees with it, or a file shorter than its
header says (a truncated copy) means the features are computed again and replaced. Arrays are opened
with ``mmap_mode="r"``: only the rows a batch needs are read from disk.

:class:`FeatureDataset` serves such arrays as ``({modality: float32 tensor}, label)`` examples.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

from i2m2.atomic import atomic_write, atomic_write_text
from i2m2.data.multimodal_dataset import MultimodalDataset
from i2m2.errors import DataError

T = TypeVar("T")


def feature_path(data_dir: Path, key: str, split: str, modality: str) -> Path:
    """Where the features of one split and modality live (see the module docstring)."""
    return Path(data_dir) / "features" / key / f"{split}-{modality}.npy"


def cached_features(
    data_dir: Path,
    key: str,
    split: str,
    modality: str,
    compute: Callable[[], np.ndarray],
    rows: int,
    description: str = "",
) -> np.ndarray:
    """The cached ``(rows, ...)`` float32 features, else ``compute()``, stored, then read back mmapped.

    Args:
        data_dir: the dataset folder; features go under its ``features/`` folder.
        key: the backbone's :attr:`cache_key`.
        split, modality: name the file.
        compute: makes the features when the cache has none (or a bad copy).
        rows: examples in the split; a cached array with another number of rows is recomputed.
        description: stored in the JSON, to tell later what made the file (e.g. the backbone folder).
    """
    path = feature_path(data_dir, key, split, modality)
    cached = _read(path, key, rows)
    if cached is not None:
        return cached
    features = np.ascontiguousarray(compute(), dtype=np.float32)
    if len(features) != rows:
        raise ValueError(f"{path}: computed {len(features)} rows of features for {rows} examples")
    meta = {"key": key, "backbone": description, "shape": list(features.shape), "dtype": "float32"}
    path.with_suffix(".json").unlink(missing_ok=True)  # the old JSON must not vouch for the new array
    atomic_write(path, lambda f: np.save(f, features))
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta))
    reread = _read(path, key, rows)
    if reread is None:
        raise OSError(f"{path}: features were written but cannot be read back")
    return reread


def _read(path: Path, key: str, rows: int) -> np.ndarray | None:
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        warnings.warn(f"{path}: unreadable feature cache ({err}); computing the features again", stacklevel=3)
        return None
    if (
        not isinstance(meta, dict)
        or meta.get("key") != key
        or list(array.shape) != meta.get("shape")
        or array.dtype != np.float32
        or len(array) != rows
    ):
        warnings.warn(f"{path}: feature cache disagrees with {meta_path.name}; computing again", stacklevel=3)
        return None
    return array


def encode_in_batches(
    encode: Callable[[Sequence[T]], Tensor], items: Sequence[T], batch_size: int = 64
) -> np.ndarray:
    """``encode`` over ``items`` in batches without gradients, stacked into one float32 array."""
    chunks = []
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            chunks.append(encode(items[start : start + batch_size]).float().cpu().numpy())
    if not chunks:
        raise ValueError("no items to encode")
    return np.concatenate(chunks)


class FeatureDataset(MultimodalDataset):
    """Examples read from (possibly memory-mapped) feature arrays: ``({m: float32 tensor}, label)``.

    Args:
        features: modality -> feature array (a read-only mmap is fine: rows are copied on access).
        labels: ``(N,)`` integer labels.
        rows: modality -> ``(N,)`` (or ``(N, k)``) int64 rows of ``features[m]`` that each example reads;
            default one row per example, in order. Questions on one image share its row; an NLVR2 pair
            reads two rows, giving a ``(2, D)`` input.
        groups: optional per-example groups (ids, or a boolean membership matrix).
        extras: optional per-example tensors added to every item's input dict under their own keys
            (e.g. VQA answer counts for the soft targets); they are not modalities and no expert reads them.
    """

    def __init__(
        self,
        features: Mapping[str, np.ndarray],
        labels: Tensor,
        rows: Mapping[str, Tensor] | None = None,
        groups: Tensor | None = None,
        extras: Mapping[str, Tensor] | None = None,
    ) -> None:
        rows = dict(rows or {})
        for m, x in features.items():
            if m not in rows:
                rows[m] = torch.arange(len(x))
            if len(rows[m]) and int(rows[m].max()) >= len(x):
                raise ValueError(f"feature rows of '{m}' go past its {len(x)} rows")
        super().__init__({**rows, **dict(extras or {})}, labels, groups)
        self.features = dict(features)
        self.rows = {m: rows[m].long() for m in features}
        self.extras = dict(extras or {})

    def __getitem__(self, index: int) -> tuple[dict[str, Tensor], Tensor]:
        item = {m: self._read(m, x, self.rows[m][index]) for m, x in self.features.items()}
        item.update({k: v[index] for k, v in self.extras.items()})
        return item, self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[dict[str, Tensor], Tensor]:
        """A whole batch with one fancy-indexed read per modality (as :class:`MultimodalDataset` does)."""
        index = torch.as_tensor(indices, dtype=torch.long)
        batch = {m: self._read(m, x, self.rows[m][index]) for m, x in self.features.items()}
        batch.update({k: v[index] for k, v in self.extras.items()})
        return batch, self.labels[index]

    @staticmethod
    def _read(modality: str, features: np.ndarray, rows: Tensor) -> Tensor:
        """The feature rows ``rows`` as a tensor, checked where they are read (the file may change under a
        memory map, and is never read whole): a :class:`DataError` naming the file and the row."""
        values = np.array(features[rows.numpy()])
        if values.dtype.kind in "fc" and not np.isfinite(values).all():
            flat = rows.reshape(-1).numpy()
            finite = np.isfinite(values.reshape(len(flat), -1)).all(1)
            source = getattr(features, "filename", None) or "in-memory features"
            raise DataError(
                f"{source}: modality '{modality}' feature row {int(flat[np.argmin(finite)])} holds NaN or "
                "infinite values; expected finite features (delete the cached file to compute it again)"
            )
        return torch.from_numpy(values)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.features)

    def subset(self, index: Tensor) -> FeatureDataset:
        """The examples at ``index``; the (mmapped) arrays are shared, only the row maps are sliced."""
        groups = None if self.groups is None else self.groups[index]
        return FeatureDataset(
            self.features,
            self.labels[index],
            {m: r[index] for m, r in self.rows.items()},
            groups,
            {k: v[index] for k, v in self.extras.items()},
        )
