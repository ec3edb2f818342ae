"""How BatchNorm normalizes at validation and test: a recipe's ``bn_stats`` setting.

* ``running`` (Lightning's default, nothing added): eval mode with the running averages kept during
  training (an exponential moving average, momentum 0.1, so mostly the last 10-20 training batches).
* ``precise``: before every validation and test, every BatchNorm's running statistics are recomputed with
  one no-grad pass over the training set (``momentum=None``: the plain average of the batches' means and
  variances), then evaluation proceeds in eval mode. Deterministic and independent of the evaluated batch;
  costs one forward pass over the training set per evaluation. On AV-MNIST's audio LeNet the moving
  average is a poor estimate at lr 5e-2 (validation accuracy collapses at some epochs) and recomputing it
  recovers the accuracy the authors' code reports (``docs/notes/authors-code-recipes.md``).
* ``batch``: BatchNorm layers stay in train mode while validating and testing, so each batch is normalized
  by its own statistics (as the authors' unimodal script does, by never calling ``.eval()``); the running
  statistics are not updated. Results then depend on the batch size and on which examples share a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import move_data_to_device
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import DataLoader

from i2m2.experiment import BN_STATS


def batchnorm_layers(model: nn.Module) -> list[_BatchNorm]:
    """The BatchNorm layers of ``model`` that keep running statistics."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


def recompute_batchnorm(model: nn.Module, batches: Iterable[Any], forward: Callable[[Any], Any]) -> int:
    """Reset every BatchNorm's running statistics and re-estimate them over ``batches``; returns the count.

    BatchNorm layers run in train mode with ``momentum=None`` (a cumulative average over the batches, each
    weighted equally), every other module in eval mode (dropout off, as at evaluation), without gradients.
    Modes and momenta are restored afterwards. ``forward(batch)`` runs the model on one batch.
    """
    norms = batchnorm_layers(model)
    if not norms:
        return 0
    modes = {m: m.training for m in model.modules()}
    momenta = [m.momentum for m in norms]
    count = 0
    try:
        model.eval()
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        with torch.no_grad():
            for batch in batches:
                forward(batch)
                count += 1
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        for module, training in modes.items():
            module.training = training
    if count == 0:
        raise ValueError("precise BatchNorm statistics need at least one training batch; the loader is empty")
    return count


class BatchNormStats(pl.Callback):
    """Applies a recipe's ``bn_stats`` (``precise`` or ``batch``) to validation and test of a LightningModule.

    The module's ``model`` attribute (or the module itself) holds the BatchNorm layers; its
    ``objective.split_batch`` (when present) separates inputs from targets. ``precise`` reads the training
    set in file order through a loader with its own generator, so the training run's random stream (and
    hence its batch order) is the same as without this callback.
    """

    def __init__(self, mode: str) -> None:
        if mode not in BN_STATS:
            raise ValueError(f"bn_stats: expected one of {list(BN_STATS)}, got {mode!r}")
        self.mode = mode
        self._switched: list[_BatchNorm] = []

    # precise: recompute the statistics, then evaluate in eval mode
    def _recompute(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        model: nn.Module = getattr(pl_module, "model", pl_module)
        if not batchnorm_layers(model):
            return
        source = trainer.datamodule if trainer.datamodule is not None else pl_module  # type: ignore[attr-defined]
        loader: DataLoader[Any] = source.train_dataloader()
        ordered = DataLoader(
            loader.dataset,
            batch_size=loader.batch_size,
            shuffle=False,
            collate_fn=loader.collate_fn,
            num_workers=loader.num_workers,
            pin_memory=loader.pin_memory,
            generator=torch.Generator(),  # leaves the global random stream alone
        )
        objective = getattr(pl_module, "objective", None)

        def forward(batch: Any) -> None:
            batch = move_data_to_device(batch, pl_module.device)
            inputs = objective.split_batch(*batch)[0] if objective is not None else batch[0]
            with trainer.precision_plugin.forward_context():
                pl_module(inputs)

        recompute_batchnorm(model, ordered, forward)

    # batch: BatchNorm in train mode without updating the running statistics
    def _batch_mode(self, pl_module: pl.LightningModule) -> None:
        self._switched = batchnorm_layers(getattr(pl_module, "model", pl_module))
        for m in self._switched:
            m.track_running_stats = False  # train mode then uses batch statistics and leaves the buffers
            m.train()

    def _restore(self) -> None:
        for m in self._switched:
            m.track_running_stats = True
            m.eval()
        self._switched = []

    def _start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.mode == "precise":
            self._recompute(trainer, pl_module)
        elif self.mode == "batch":
            self._batch_mode(pl_module)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start(trainer, pl_module)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start(trainer, pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()  # Lightning switches the model back to train mode before the next epoch

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()


def batchnorm_callbacks(mode: str) -> list[pl.Callback]:
    """The callbacks a stage's ``bn_stats`` needs (none for ``running``)."""
    return [] if mode == "running" else [BatchNormStats(mode)]
