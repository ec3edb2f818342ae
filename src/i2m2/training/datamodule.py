"""LightningDataModules: one generic over train/val/test splits, and one per dataset for the CLI."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
from torch.utils.data import DataLoader, Dataset

from i2m2.data.multimodal_dataset import DataSplits
from i2m2.data.synthetic import SyntheticTask


class SplitsDataModule(pl.LightningDataModule):
    """Serves already-loaded :class:`DataSplits`; subclasses load them in :meth:`load_splits`.

    Args:
        splits: the data, or ``None`` when a subclass loads it.
        batch_size: examples per batch (per process under DDP).
        num_workers: DataLoader worker processes (0 loads in the main process; data here is in memory).
    """

    def __init__(self, splits: DataSplits | None = None, batch_size: int = 64, num_workers: int = 0) -> None:
        super().__init__()
        self.splits = splits
        self.batch_size = batch_size
        self.num_workers = num_workers

    def load_splits(self) -> DataSplits:
        raise NotImplementedError(f"{type(self).__name__} was given no splits and does not load any")

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            self.splits = self.load_splits()

    @property
    def num_classes(self) -> int:
        self.setup()
        assert self.splits is not None
        return self.splits.num_classes

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        assert self.splits is not None
        return self._loader(self.splits.train, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        assert self.splits is not None
        return self._loader(self.splits.val, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        assert self.splits is not None
        return self._loader(self.splits.test, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()


class SyntheticDataModule(SplitsDataModule):
    """The paper's generative process (Eq. 1) with its two knobs; see :class:`SyntheticTask`.

    Args:
        num_classes: K.
        num_modalities: M (modalities are named m0, m1, ...).
        dim: size of each modality's vector.
        intra: strength of each modality's own dependence on the label.
        inter: strength of the dependence that exists only across modalities.
        noise: Gaussian noise standard deviation.
        n_train: training examples.
        n_val: validation examples.
        n_test: test examples.
        seed: seeds the samples (the task's vectors are fixed by ``task_seed``).
        task_seed: fixes the class and code vectors.
        batch_size: examples per batch.
    """

    def __init__(
        self,
        num_classes: int = 4,
        num_modalities: int = 2,
        dim: int = 16,
        intra: float = 1.0,
        inter: float = 1.0,
        noise: float = 1.0,
        n_train: int = 2000,
        n_val: int = 1000,
        n_test: int = 4000,
        seed: int = 0,
        task_seed: int = 0,
        batch_size: int = 128,
    ) -> None:
        super().__init__(batch_size=batch_size)
        self.task = SyntheticTask(num_classes, num_modalities, dim, intra, inter, noise, task_seed)
        self.sizes = (n_train, n_val, n_test)
        self.seed = seed

    def load_splits(self) -> DataSplits:
        return self.task.splits(*self.sizes, seed=self.seed)


class ExperimentDataModule(SplitsDataModule):
    """The data of any registered experiment (``i2m2 run NAME`` uses the same loader).

    Args:
        experiment: a registered experiment name (``synthetic``, ``avmnist``, ``mimic``, ``easy-vqa``).
        group: the regime or task within the experiment ("" when it has none).
        data_dir: the dataset folder, for experiments that read files.
        seed: seeds the split and any sampling.
        batch_size: examples per batch.
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        experiment: str,
        group: str = "",
        data_dir: Path | None = None,
        seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        self.experiment = experiment
        self.group = group
        self.data_dir = data_dir
        self.seed = seed

    def load_splits(self) -> DataSplits:
        from i2m2.experiments.registry import get_experiment

        return get_experiment(self.experiment).load_data(self.group, self.data_dir, self.seed)


class AVMNISTDataModule(SplitsDataModule):
    """AV-MNIST in MultiBench's layout (see :func:`i2m2.data.avmnist.load_avmnist`).

    Args:
        data_dir: the folder holding ``image/``, ``audio/`` and the label files.
        seed: kept for symmetry with the other datasets (the split is MultiBench's fixed one).
        batch_size: examples per batch (the paper uses 40).
        num_workers: DataLoader workers.
    """

    def __init__(self, data_dir: Path, seed: int = 0, batch_size: int = 40, num_workers: int = 0) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        self.data_dir = Path(data_dir)
        self.seed = seed

    def load_splits(self) -> DataSplits:
        from i2m2.data.avmnist import load_avmnist

        return load_avmnist(self.data_dir, self.seed)


class MIMICDataModule(SplitsDataModule):
    """MIMIC-III from MultiBench's ``im.pk`` (see :func:`i2m2.data.mimic.load_mimic`).

    Args:
        data_dir: ``im.pk`` or the folder holding it.
        task: ``mortality``, ``icd9_140_239`` or ``icd9_460_519``.
        seed: seeds the 80/10/10 split.
        batch_size: examples per batch (the paper uses 40).
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        data_dir: Path,
        task: str = "mortality",
        seed: int = 0,
        batch_size: int = 40,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        self.data_dir = Path(data_dir)
        self.task = task
        self.seed = seed

    def load_splits(self) -> DataSplits:
        from i2m2.data.mimic import load_mimic

        return load_mimic(self.data_dir, self.task, self.seed)
