"""A thin LightningModule that trains any method (unimodal, intra, inter, I2M2) on the product's NLL."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MeanMetric, MetricCollection

from i2m2.models.i2m2 import I2M2
from i2m2.models.product_of_experts import product_of_experts
from i2m2.models.subsets import withheld_subsets
from i2m2.objectives import CLASSIFICATION, Objective

Batch = tuple[dict[str, Tensor], Tensor]
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
}


class MethodModule(pl.LightningModule):
    """Wraps an :class:`I2M2` model (any selection of experts) with its optimizer and metrics.

    The training step is kept lean: inputs and labels are checked on the first batch of each loader
    (their values cost a host-device sync), and the step's loss is logged per step only when a
    progress bar shows it.

    Args:
        model: the method to train; its ``log p(y|x)`` is trained with the negative log-likelihood. Its
            ``num_classes`` (C) is the one the metrics count.
        optimizer: ``sgd``, ``adam``, ``adamw`` or ``rmsprop``.
        lr: learning rate.
        weight_decay: L2 penalty (decoupled for adamw).
        momentum: SGD momentum.
        job: plain facts about the job (experiment, method, group, seed) kept in its checkpoints.
        objective: the loss, metrics and monitored metric (default: single-label classification).
    """

    def __init__(
        self,
        model: I2M2,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        job: dict[str, Any] | None = None,
        objective: Objective | None = None,
    ) -> None:
        super().__init__()
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer '{optimizer}'; expected one of {sorted(OPTIMIZERS)}")
        if not isinstance(model, I2M2):
            raise TypeError(f"model: expected an i2m2.I2M2, got {type(model).__name__}")
        if model.num_classes is None:
            raise ValueError("model: build it with num_classes=C (the metrics need the number of classes)")
        num_classes = model.num_classes
        self.save_hyperparameters(ignore=["model", "objective"])
        self.hparams["num_classes"] = num_classes  # plain facts in the checkpoint
        self.objective = objective or CLASSIFICATION
        self.model = model
        self.num_classes = num_classes
        self.optimizer_name = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.val_metrics = self.objective.metrics(num_classes, "val/")
        self.test_metrics = self.objective.metrics(num_classes, "test/")
        # Evaluation metrics and losses are accumulated by torchmetrics and logged once per epoch: logging
        # a metric collection per batch cost about a millisecond, a small model's whole step a few.
        # nan_strategy="disable": no per-update NaN scan (a device sync per step on GPU); a NaN loss reaches
        # the epoch mean, where FiniteLoss stops the job.
        self.train_loss, self.val_loss, self.test_loss = (
            MeanMetric(nan_strategy="disable") for _ in range(3)
        )
        self._train_loss_logged = False
        self.step_logging = True  # per-step loss in the progress bar; the trainer turns it off without one
        self.collect_predictions = False  # keep per-example test outputs (one process only)
        self.test_outputs: list[dict[str, Any]] = []
        # Evaluation batches larger than this are accumulated in slices of this many examples, in order:
        # a job evaluates in-memory data in few large batches and gets the numbers of this batch size.
        self.eval_chunk: int | None = None
        self._exact_at_once = {
            "val": counts_or_lists(self.val_metrics),
            "test": counts_or_lists(self.test_metrics),
        }

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning names the running hook here before and after every hook call (some 50 times a step);
        # it is a plain attribute, so nn.Module's checks for parameters, buffers and submodules are skipped.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return self.model(inputs)

    def _outputs(self, batch: Batch, batch_idx: int) -> tuple[dict[str, Tensor], dict[str, Tensor], Any]:
        """Each expert's logits and masks, run once; the first batch of a loader checks its values."""
        inputs, target = self.objective.split_batch(*batch)
        check = batch_idx == 0
        if check:
            self.objective.check_target(target, self.num_classes)
        logits, masks = self.model.expert_logits(inputs, check_values=check)
        return logits, masks, target

    def _log_probs(self, logits: dict[str, Tensor], masks: dict[str, Tensor]) -> Tensor:
        return product_of_experts(list(logits.values()), list(masks.values()), self.model.log_prior)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        logits, masks, target = self._outputs(batch, batch_idx)
        loss = self.objective.loss(self._log_probs(logits, masks), target)
        # With a bar the step's loss shows; either way train/loss at epoch end is the epoch's mean.
        self.train_loss.update(_per_example(loss.detach(), self.objective.batch_size(target)))
        if self.step_logging:  # a progress bar shows each step's loss (a log call costs ~1 ms: only then)
            self.log("train/loss_step", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def on_train_epoch_start(self) -> None:
        self.train_loss.reset()
        self._train_loss_logged = False

    def _log_train_loss(self) -> None:
        """The epoch's mean training loss, logged once: at the epoch's validation (so that callbacks
        reading it at the epoch's end see it), or at the epoch's end when there is no validation."""
        if not self._train_loss_logged and self.train_loss.update_count > 0:
            self.log("train/loss", self.train_loss.compute(), prog_bar=self.step_logging)
            self._train_loss_logged = True

    def on_train_epoch_end(self) -> None:
        self._log_train_loss()

    def _accumulators(self, stage: str) -> tuple[MetricCollection, MeanMetric]:
        """The metrics and the mean loss that ``stage`` ("val" or "test") accumulates over an epoch."""
        return (self.val_metrics, self.val_loss) if stage == "val" else (self.test_metrics, self.test_loss)

    def _evaluate(self, batch: Batch, batch_idx: int, stage: str) -> tuple[Any, ...]:
        logits, masks, target = self._outputs(batch, batch_idx)
        log_probs = self._log_probs(logits, masks)
        metrics, losses = self._accumulators(stage)
        slices = self._slices(batch, log_probs, target)
        if len(slices) == 1 or self._exact_at_once[stage]:
            self.objective.update(metrics, log_probs, target)
        else:
            for part_log_probs, part_target in slices:
                self.objective.update(metrics, part_log_probs, part_target)
        for part_log_probs, part_target in slices:  # a float mean's sum depends on how it is split
            loss = self.objective.loss(part_log_probs, part_target)
            losses.update(_per_example(loss, self.objective.batch_size(part_target)))
        return logits, masks, log_probs

    def _slices(self, batch: Batch, log_probs: Tensor, target: Any) -> list[tuple[Tensor, Any]]:
        """The batch's log-probabilities and targets in consecutive slices of ``eval_chunk`` examples (the
        whole batch when it is no larger): each loss and metric update sees what a batch of that size
        would, so the epoch's numbers do not depend on how many slices an evaluation batch holds."""
        chunk, size = self.eval_chunk, len(log_probs)
        if chunk is None or size <= chunk:
            return [(log_probs, target)]
        inputs, labels = batch
        slices = []
        for start in range(0, size, chunk):
            part = slice(start, start + chunk)
            _, part_target = self.objective.split_batch({m: x[part] for m, x in inputs.items()}, labels[part])
            slices.append((log_probs[part], part_target))
        return slices

    def _log_epoch(self, stage: str) -> None:
        """One log call per epoch; torchmetrics syncs the sums across processes in ``compute``."""
        metrics, losses = self._accumulators(stage)
        values = metrics.compute() | {f"{stage}/loss": losses.compute()}
        self.log_dict(values, prog_bar=stage == "val")
        metrics.reset()
        losses.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")
        if not self.trainer.sanity_checking:
            self._log_train_loss()

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        logits, masks, log_probs = self._evaluate(batch, batch_idx, "test")
        if self.collect_predictions:
            inputs, target = self.objective.split_batch(*batch)
            outputs = self._predictions(logits, masks, batch[1], log_probs, inputs)
            self.test_outputs.append(self._with_scores(outputs, log_probs, target))

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        """The method's log-probabilities, each expert's own, and the method with each modality withheld."""
        logits, masks, _ = self._outputs(batch, batch_idx)
        inputs, target = self.objective.split_batch(*batch)
        log_probs = self._log_probs(logits, masks)
        outputs = self._predictions(logits, masks, batch[1], log_probs, inputs)
        return self._with_scores(outputs, log_probs, target)

    def _with_scores(self, outputs: dict[str, Any], log_probs: Tensor, target: Any) -> dict[str, Any]:
        """``outputs`` plus the objective's per-example scores, when it has them (the VQA score of each
        question: what the verdicts' bootstrap resamples, as the labels alone cannot give it)."""
        scores = self.objective.example_scores(log_probs, target)
        return outputs if scores is None else outputs | {"scores": scores.detach().cpu()}

    def _predictions(
        self,
        logits: dict[str, Tensor],
        masks: dict[str, Tensor],
        labels: Tensor,
        log_probs: Tensor,
        inputs: dict[str, Tensor],
    ) -> dict[str, Any]:
        """Every output the analyses read, derived from one pass of each expert.

        Withholding a modality removes the experts that read it from the product (as a presence mask
        marking it absent would), so no expert runs again, except one that handles missing modalities
        itself (null token): it is asked again without them, for each single modality and, since nothing
        else can give it, for each subset :func:`~i2m2.models.subsets.withheld_subsets` names (saved as
        ``withheld__a+b``).
        """
        experts = self.model.named_experts()
        withheld = {}
        modalities = self.model.modalities
        asks_again = any(getattr(experts[n], "handles_missing", False) for n in logits)
        subsets = withheld_subsets(modalities) if asks_again else [(m,) for m in modalities]
        for gone in subsets if len(modalities) > 1 else []:
            kept = {n: mask & set(gone).isdisjoint(experts[n].modalities) for n, mask in masks.items()}
            redone = dict(logits)
            for n, expert in experts.items():  # one network for any subset: ask it without them
                if n in logits and getattr(expert, "handles_missing", False):
                    present = {k: masks[n] & (k not in gone) for k in expert.modalities if k in inputs}
                    redone[n] = expert(inputs, present=present)
                    kept[n] = masks[n] & any(k not in gone for k in expert.modalities)
            withheld["+".join(gone)] = self._log_probs(redone, kept).cpu()
        return {
            "labels": labels.cpu(),
            "log_probs": log_probs.cpu(),
            "experts": {name: F.log_softmax(z, dim=-1).cpu() for name, z in logits.items()},
            "withheld": withheld,
        }

    def configure_optimizers(self) -> torch.optim.Optimizer:
        options: dict[str, Any] = {"lr": self.lr, "weight_decay": self.weight_decay}
        if self.optimizer_name == "sgd":
            options["momentum"] = self.momentum
        return OPTIMIZERS[self.optimizer_name](self.model.parameters(), **options)


def counts_or_lists(metrics: MetricCollection) -> bool:
    """Whether every state of these metrics is an integer count (summed) or a list (concatenated): then one
    update with a whole evaluation batch leaves the same states as one update per slice of it, in order
    (a float sum would round differently)."""
    for metric in metrics.values(copy_state=False):
        for default in metric._defaults.values():
            if isinstance(default, list):
                continue
            if not isinstance(default, Tensor) or default.is_floating_point() or default.is_complex():
                return False
    return True


def _per_example(loss: Tensor, batch_size: int) -> Tensor:
    """A batch's mean loss repeated once per example, so that the epoch mean weights batches by size
    (``MeanMetric`` with ``nan_strategy="disable"`` ignores an explicit weight)."""
    return loss.expand(batch_size)
