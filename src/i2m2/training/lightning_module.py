"""A thin LightningModule that trains any method (unimodal, intra, inter, I2M2) on the product's NLL."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from i2m2.models.i2m2 import I2M2
from i2m2.models.validation import check_labels
from i2m2.training.metrics import classification_metrics

Batch = tuple[dict[str, Tensor], Tensor]
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
}


class MethodModule(pl.LightningModule):
    """Wraps an :class:`I2M2` model (any selection of experts) with its optimizer and metrics.

    Args:
        model: the method to train; its ``log p(y|x)`` is trained with the negative log-likelihood.
        num_classes: C.
        optimizer: ``sgd``, ``adam``, ``adamw`` or ``rmsprop``.
        lr: learning rate.
        weight_decay: L2 penalty (decoupled for adamw).
        momentum: SGD momentum.
    """

    def __init__(
        self,
        model: I2M2,
        num_classes: int,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
    ) -> None:
        super().__init__()
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer '{optimizer}'; expected one of {sorted(OPTIMIZERS)}")
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self.num_classes = num_classes
        self.optimizer_name = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.val_metrics = classification_metrics(num_classes, "val/")
        self.test_metrics = classification_metrics(num_classes, "test/")

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return self.model(inputs)

    def _loss(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        inputs, labels = batch
        check_labels(labels, self.num_classes)
        log_probs = self.model(inputs)
        return F.nll_loss(log_probs, labels), log_probs, labels

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss, _, labels = self._loss(batch)
        # The bar shows each step's loss; at the end of an epoch train/loss holds the epoch's mean.
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(labels))
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        loss, log_probs, labels = self._loss(batch)
        self.val_metrics.update(log_probs.exp(), labels)
        self.log("val/loss", loss, sync_dist=True, batch_size=len(labels))
        self.log_dict(self.val_metrics, prog_bar=True, batch_size=len(labels))

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        loss, log_probs, labels = self._loss(batch)
        self.test_metrics.update(log_probs.exp(), labels)
        self.log("test/loss", loss, sync_dist=True, batch_size=len(labels))
        self.log_dict(self.test_metrics, batch_size=len(labels))

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        """The method's log-probabilities, each expert's own, and the method with each modality withheld."""
        inputs, labels = batch
        logits, _ = self.model.expert_logits(inputs)
        out: dict[str, Any] = {
            "labels": labels,
            "log_probs": self.model(inputs),
            "experts": {name: F.log_softmax(z, dim=-1) for name, z in logits.items()},
            "withheld": {},
        }
        modalities = self.model.modalities
        if len(modalities) > 1:
            for m in modalities:
                absent = {m: torch.zeros(len(labels), dtype=torch.bool, device=labels.device)}
                out["withheld"][m] = self.model(inputs, present=absent)
        return out

    def configure_optimizers(self) -> torch.optim.Optimizer:
        options: dict[str, Any] = {"lr": self.lr, "weight_decay": self.weight_decay}
        if self.optimizer_name == "sgd":
            options["momentum"] = self.momentum
        return OPTIMIZERS[self.optimizer_name](self.model.parameters(), **options)
