"""In-memory multimodal datasets: a dict of per-modality tensors plus integer labels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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

    def __post_init__(self) -> None:
        for name in ("train", "val", "test"):
            labels = getattr(self, name).labels
            if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise ValueError(
                    f"{name} labels: expected values in 0..{self.num_classes - 1}, got range "
                    f"{int(labels.min())}..{int(labels.max())}"
                )


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
