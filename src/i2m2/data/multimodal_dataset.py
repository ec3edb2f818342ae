"""In-memory multimodal datasets: a dict of per-modality tensors plus integer labels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, default_collate


class MultimodalDataset(Dataset[tuple[dict[str, Tensor], Tensor]]):
    """Examples ``({modality: tensor}, label)``; the default collate turns them into a dict batch.

    Args:
        inputs: modality name -> tensor with the example axis first.
        labels: integer labels ``(N,)``.
        groups: optional per-example group ids (e.g. OOD split, regime) kept for per-group analysis.

    Floating inputs of another dtype (float64 from numpy/scikit-learn, float16, bfloat16) are cast to
    float32, the models' dtype; integer inputs (token ids) and bool masks are kept as they are. The model
    itself still rejects a wrong dtype, so data built without this class must be cast by its author.
    """

    def __init__(self, inputs: Mapping[str, Tensor], labels: Tensor, groups: Tensor | None = None) -> None:
        sizes = {m: len(x) for m, x in inputs.items()}
        if not inputs:
            raise ValueError("a multimodal dataset needs at least one modality")
        if any(n != len(labels) for n in sizes.values()):
            raise ValueError(
                f"modalities and labels disagree on the number of examples: {sizes}, labels {len(labels)}"
            )
        if labels.is_floating_point():
            raise ValueError(f"labels: expected an integer tensor, got {labels.dtype}")
        self.inputs = {m: _as_model_dtype(x) for m, x in inputs.items()}
        self.labels = labels.long()
        self.groups = groups
        self._values_checked = False  # set by DataSplits, which checks every value once

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[dict[str, Tensor], Tensor]:
        return {m: x[index] for m, x in self.inputs.items()}, self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[dict[str, Tensor], Tensor]:
        """A whole batch by slicing each tensor once (a DataLoader calls this instead of per-example
        ``__getitem__`` + collate; pair it with :func:`already_batched` as the ``collate_fn``)."""
        if (
            type(self).__getitem__ is not MultimodalDataset.__getitem__
        ):  # a subclass that stores data its own way
            return default_collate([self[i] for i in indices])  # type: ignore[no-any-return,unused-ignore]
        index = torch.as_tensor(indices, dtype=torch.long)
        return {m: x[index] for m, x in self.inputs.items()}, self.labels[index]

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.inputs)

    def subset(self, index: Tensor) -> MultimodalDataset:
        """The examples at ``index`` (a tensor of positions), as a new dataset sharing no state."""
        groups = None if self.groups is None else self.groups[index]
        return MultimodalDataset({m: x[index] for m, x in self.inputs.items()}, self.labels[index], groups)


def _as_model_dtype(x: Tensor) -> Tensor:
    """Floating tensors as float32 (the models' dtype); anything else unchanged."""
    return x.float() if x.is_floating_point() and x.dtype != torch.float32 else x


def already_batched(batch: tuple[dict[str, Tensor], Tensor]) -> tuple[dict[str, Tensor], Tensor]:
    """The ``collate_fn`` for :class:`MultimodalDataset`: its ``__getitems__`` already returns a batch."""
    return batch


@dataclass
class DataSplits:
    """Train, validation and test sets of one task. Model selection uses ``val`` only, never ``test``."""

    train: MultimodalDataset
    val: MultimodalDataset
    test: MultimodalDataset
    num_classes: int
    # What turns a raw example into these tensors (standardization statistics, class names), in plain
    # values: saved with each job so a trained model can read new raw data (i2m2.inference.preprocessing).
    preprocessing: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        """Every label in range and every in-memory value finite, checked once here, so no training step
        pays for a check and no later batch can hold what the first batch's checks would have refused."""
        for name in ("train", "val", "test"):
            dataset = getattr(self, name)
            check_labels_in_range(name, dataset.labels, self.num_classes)
            check_finite_values(name, dataset)


def check_labels_in_range(split: str, labels: Tensor, num_classes: int) -> None:
    """A ValueError naming the split and the first row whose label is outside ``0..num_classes-1``."""
    if not len(labels):
        return
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        row = int(bad.reshape(len(labels), -1).any(1).nonzero()[0, 0])
        raise ValueError(
            f"{split} labels: expected values in 0..{num_classes - 1}, got range "
            f"{int(labels.min())}..{int(labels.max())} (first bad label {labels[row].tolist()} at row {row})"
        )


def check_finite_values(split: str, dataset: MultimodalDataset) -> None:
    """A ValueError naming the split, modality and first row holding NaN or an infinity.

    Runs once per dataset object (a split checked for one group is not checked again for the next).
    Only the tensors held in memory are checked; datasets that read examples from files check each
    example where they read it.
    """
    if getattr(dataset, "_values_checked", False):
        return
    for name, x in dataset.inputs.items():
        row = first_non_finite_row(x)
        if row is not None:
            raise ValueError(
                f"{split} split, modality '{name}': row {row} holds NaN or infinite values; expected "
                "finite numbers (clean or drop that example)"
            )
    dataset._values_checked = True


def first_non_finite_row(x: Tensor) -> int | None:
    """The index of the first example of ``x`` (example axis first) holding NaN or inf; ``None`` if none.

    Integer and bool tensors are always finite. Large tensors are checked in chunks of rows, so the check
    needs no second copy of the data.
    """
    if not (x.is_floating_point() or x.is_complex()) or x.numel() == 0:
        return None
    per_row = max(1, x[0].numel())
    step = max(1, (1 << 24) // per_row)
    for start in range(0, len(x), step):
        finite = torch.isfinite(x[start : start + step]).reshape(-1, per_row).all(1)
        if not finite.all():
            return start + int((~finite).nonzero()[0, 0])
    return None


def split_by_fraction(
    dataset: MultimodalDataset, val_fraction: float, seed: int | None = None
) -> tuple[MultimodalDataset, MultimodalDataset]:
    """Carve a validation set off a training set: the last ``val_fraction`` of rows, or a seeded shuffle."""
    n = len(dataset)
    n_val = max(1, round(n * val_fraction))
    order = (
        torch.arange(n) if seed is None else torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    )
    return dataset.subset(order[: n - n_val]), dataset.subset(order[n - n_val :])
