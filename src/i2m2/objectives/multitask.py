"""Several binary findings per example (the four fastMRI knee findings): loss, metrics, thresholds.

Every method outputs ``log p(y_t | x)`` of shape ``(B, T, 2)``: T binary tasks, each its own product of
experts. The loss is the sum over tasks of a class-weighted negative log-likelihood (the authors' code
sums one weighted cross-entropy per finding), with weights from the *training* split's label counts,
so a rare finding's positives are not drowned by its negatives.

Metrics: per-finding AUROC (``auroc_<finding>``) and their mean (``auroc``, the model-selection metric
of the paper's Appendix B). A finding without positives (or without negatives) in the evaluated split has
no AUROC: it is NaN and left out of the mean, which is NaN only when no finding has one. Balanced
accuracy needs a decision threshold: it is chosen per finding on the best epoch's *validation*
predictions and applied unchanged to test (``balanced_acc_<finding>`` and the mean ``balanced_acc``).
The authors' code picks the threshold on the set being scored, test included, which makes the test
score optimistic; that is not done here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import BinaryAUROC, MultilabelAUROC
from torchmetrics.utilities.data import dim_zero_cat

from i2m2.metrics import both_classes, defined_mean, quietly
from i2m2.models.validation import check_labels
from i2m2.objectives import Objective


def class_weights_from_labels(labels: Tensor | np.ndarray, classes: int = 2) -> Tensor:
    """``(T, classes)`` weights ``n / (classes * n_c)`` per task (sklearn's "balanced"), from training labels.

    A class absent from the training labels gets weight 1 (it never appears in the loss anyway).
    """
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if y.dim() != 2 or len(y) == 0:
        raise ValueError(f"labels: expected a non-empty (N, tasks) array, got shape {tuple(y.shape)}")
    counts = torch.stack([torch.bincount(column, minlength=classes) for column in y.T]).float()
    weights = len(y) / (classes * counts)
    return torch.where(counts > 0, weights, torch.ones_like(weights))


class TaskAUROC(BinaryAUROC):
    """AUROC of one task from ``(B, T, 2)`` probabilities and ``(B, T)`` labels; NaN (undefined, not 0)
    when the task's labels are all positive or all negative."""

    def __init__(self, task: int) -> None:
        super().__init__()
        self.task = task

    def update(self, preds: Tensor, target: Tensor) -> None:
        super().update(preds[:, self.task, 1], target[:, self.task])

    def compute(self) -> Tensor:  # type: ignore[override]  # torchmetrics' own AUROC does the same
        value = quietly(super().compute)
        return defined_mean(value.reshape(1), both_classes(dim_zero_cat(self.target)).reshape(1))


class MeanAUROC(MultilabelAUROC):
    """The mean over tasks of their AUROCs (macro average), from ``(B, T, 2)`` probabilities, over the
    tasks whose labels hold both classes; NaN when no task's do."""

    def __init__(self, num_tasks: int) -> None:
        super().__init__(num_labels=num_tasks, average="none")

    def update(self, preds: Tensor, target: Tensor) -> None:
        super().update(preds[..., 1], target)

    def compute(self) -> Tensor:  # type: ignore[override]  # torchmetrics' own AUROC does the same
        per_task = quietly(super().compute)
        return defined_mean(per_task, both_classes(dim_zero_cat(self.target)))


def balanced_accuracy(scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """Mean recall of the classes present when ``scores >= threshold`` predicts class 1."""
    predicted = scores >= threshold
    recalls = [np.mean(predicted[labels == c] == bool(c)) for c in (0, 1) if np.any(labels == c)]
    return float(np.mean(recalls))


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold maximizing balanced accuracy on (validation) ``scores``; 0.5 if a class is absent.

    Candidates are the midpoints between consecutive distinct scores (and the ends), so the chosen
    threshold separates the validation examples the same way any threshold in its interval would.
    """
    if len(np.unique(labels)) < 2:
        return 0.5
    values = np.unique(scores)
    candidates = np.concatenate([[values[0] - 1e-6], (values[1:] + values[:-1]) / 2, [values[-1] + 1e-6]])
    accuracies = [balanced_accuracy(scores, labels, t) for t in candidates]
    return float(candidates[int(np.argmax(accuracies))])


class MultiTaskObjective(Objective):
    """Class-weighted NLL over T binary tasks; per-task AUROC; balanced accuracy at a validation threshold.

    Args:
        tasks: the task (finding) names, in the label columns' order.
        class_weights: ``(T, 2)`` loss weights, e.g. :func:`class_weights_from_labels` of the training
            labels (``None``: unweighted).
    """

    def __init__(self, tasks: Sequence[str], class_weights: Tensor | None = None) -> None:
        self.tasks = tuple(tasks)
        self.num_tasks: int = len(self.tasks)
        if class_weights is not None and tuple(class_weights.shape) != (self.num_tasks, 2):
            raise ValueError(
                f"class_weights: expected shape ({self.num_tasks}, 2), got {tuple(class_weights.shape)}"
            )
        self.class_weights = None if class_weights is None else class_weights.detach().float().cpu()

    def check_target(self, target: Any, num_classes: int) -> None:
        if not isinstance(target, Tensor) or target.dim() != 2 or target.shape[1] != self.num_tasks:
            shape = tuple(target.shape) if isinstance(target, Tensor) else type(target).__name__
            raise ValueError(f"labels: expected (batch, {self.num_tasks}) findings {self.tasks}, got {shape}")
        check_labels(target, num_classes)

    def loss(self, log_probs: Tensor, target: Any) -> Tensor:
        weights = None if self.class_weights is None else self.class_weights.to(log_probs.device)
        return sum(
            (
                F.nll_loss(log_probs[:, t], target[:, t], weight=None if weights is None else weights[t])
                for t in range(self.num_tasks)
            ),
            start=log_probs.new_zeros(()),
        )

    def metrics(self, num_classes: int, prefix: str) -> MetricCollection:
        if num_classes != 2:
            raise ValueError(f"MultiTaskObjective: every task is binary, got num_classes={num_classes}")
        metrics: dict[str, Metric | MetricCollection] = {"auroc": MeanAUROC(self.num_tasks)}
        metrics |= {f"auroc_{name}": TaskAUROC(t) for t, name in enumerate(self.tasks)}
        return MetricCollection(metrics, prefix=prefix)

    def validation_calibrated(self) -> bool:
        return True

    def calibrated_metrics(self, val: Any, test: Any) -> dict[str, float]:
        """Per-task test balanced accuracy at the threshold that is best on validation, and their mean."""
        out = {}
        for t, name in enumerate(self.tasks):
            threshold = best_threshold(np.exp(val.log_probs[:, t, 1]), val.labels[:, t])
            out[f"balanced_acc_{name}"] = balanced_accuracy(
                np.exp(test.log_probs[:, t, 1]), test.labels[:, t], threshold
            )
        out["balanced_acc"] = float(np.mean(list(out.values())))
        return out
