"""The LightningDataModule over any train/val/test splits (``i2m2 fit``'s over an experiment by name is
:class:`i2m2.cli.experiment_modules.ExperimentDataModule`)."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from torch.utils.data import DataLoader, Dataset

from i2m2.data.multimodal_dataset import MultimodalDataset, already_batched
from i2m2.experiment import Splits


class SplitsDataModule(pl.LightningDataModule):
    """Serves the splits of an experiment: any map-style datasets yielding ``({modality: x}, y)``.

    In-memory :class:`MultimodalDataset` splits are served a batch at a time by slicing (no per-example
    indexing and collation); other datasets go through the usual per-example path, with workers if asked.

    Args:
        splits: the data, or ``None`` when a subclass loads it in :meth:`load_splits`.
        batch_size: examples per batch (per process under DDP).
        num_workers: DataLoader worker processes (0 loads in the main process).
        pin_memory: page-locked batches for faster copies to a GPU.
        eval_batch_size: examples per validation, test and prediction batch (``None``: ``batch_size``).
    """

    def __init__(
        self,
        splits: Splits | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        eval_batch_size: int | None = None,
    ) -> None:
        super().__init__()
        self.splits = splits
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory

    def load_splits(self) -> Splits:
        raise NotImplementedError(f"{type(self).__name__} was given no splits and does not load any")

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            self.splits = self.load_splits()

    @property
    def num_classes(self) -> int:
        self.setup()
        assert self.splits is not None
        return self.splits.num_classes

    def _loader(
        self, dataset: Dataset[Any], shuffle: bool = False, batch_size: int | None = None
    ) -> DataLoader[Any]:
        batched = isinstance(dataset, MultimodalDataset)
        collate: Any = already_batched if batched else None
        return DataLoader(
            dataset,
            batch_size=batch_size or self.eval_batch_size or self.batch_size,
            shuffle=shuffle,
            collate_fn=collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
        )

    def train_dataloader(self) -> DataLoader[Any]:
        assert self.splits is not None
        return self._loader(self.splits.train, shuffle=True, batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader[Any]:
        assert self.splits is not None
        return self._loader(self.splits.val)

    def test_dataloader(self) -> DataLoader[Any]:
        assert self.splits is not None
        return self._loader(self.splits.test)

    def predict_dataloader(self) -> DataLoader[Any]:
        return self.test_dataloader()
