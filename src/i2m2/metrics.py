"""The metrics every run reports: torchmetrics objects (so they sync across processes), and the
mixture accuracy the authors' code reports for products, from saved predictions.

A metric the evaluated labels cannot define is NaN, never a number: AUROC needs, for a class, examples of
it and examples not of it (a test split of one class has no AUROC), AUPRC needs positives. torchmetrics
scores such a class 0 (with a warning), which made a one-class test split report AUROC 0.0000 and a split
missing one class pull the macro mean down. Here undefined classes are left out of macro means, and a
metric defined for no class is NaN; the run's tables then say "n/a" (see :mod:`i2m2.runs.results`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import BinaryAveragePrecision, MulticlassAccuracy, MulticlassAUROC
from torchmetrics.utilities.data import dim_zero_cat

if TYPE_CHECKING:  # only the type: run folders sit above this module
    from i2m2.runs.predictions import Predictions


def quietly(compute: Callable[[], Tensor]) -> Tensor:
    """``compute()`` without torchmetrics' warnings about classes without positives (they become NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return compute()


def defined_mean(values: Tensor, defined: Tensor) -> Tensor:
    """The mean of ``values`` where ``defined``; NaN (undefined) where nothing is."""
    if not bool(defined.any()):
        return values.new_tensor(float("nan"))
    return values[defined].mean()


def both_classes(target: Tensor) -> Tensor:
    """Per column of 0/1 ``target`` ``(N, T)`` (or ``(N,)``): whether it holds both a 0 and a 1."""
    positives = (target == 1).sum(0)
    return (positives > 0) & (positives < len(target))


class PositiveClassAveragePrecision(BinaryAveragePrecision):
    """AUPRC of class 1 for two-class tasks, fed with the (B, 2) probabilities the model produces; NaN
    when the labels hold no positives (precision-recall has no recall to speak of)."""

    def update(self, preds: Tensor, target: Tensor) -> None:
        super().update(preds[:, 1], target)

    def compute(self) -> Tensor:  # type: ignore[override]  # torchmetrics' own AUROC does the same
        target = dim_zero_cat(self.target)
        value = quietly(super().compute)
        return value if bool((target == 1).any()) else value.new_tensor(float("nan"))


class DefinedMacroAUROC(MulticlassAUROC):
    """Macro one-vs-rest AUROC over the classes the labels define it for (examples of the class and
    examples of another); NaN when they define it for none (labels of a single class)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes=num_classes, average="none")

    def compute(self) -> Tensor:  # type: ignore[override]  # torchmetrics' own AUROC does the same
        per_class = quietly(super().compute)
        target = dim_zero_cat(self.target).long().reshape(-1)
        support = torch.bincount(target, minlength=self.num_classes)[: self.num_classes]
        return defined_mean(per_class, (support > 0) & (support < len(target)))


class PresentClassesBalancedAccuracy(MulticlassAccuracy):
    """Balanced accuracy: the mean recall over the classes present in the labels (as scikit-learn's
    ``balanced_accuracy_score``); a class absent from the evaluated split has no recall to average."""

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes=num_classes, average="none")

    def compute(self) -> Tensor:
        tp, _, _, fn = self._final_state()
        support = tp + fn
        present = support > 0
        return defined_mean(tp.double() / support.clamp(min=1), present).float()


def classification_metrics(num_classes: int, prefix: str) -> MetricCollection:
    """Accuracy, balanced accuracy (macro recall over the classes present), macro AUROC over the classes
    it is defined for, and AUPRC when there are two classes (NaN where undefined)."""
    metrics: dict[str, Metric] = {
        "acc": MulticlassAccuracy(num_classes=num_classes, average="micro"),
        "balanced_acc": PresentClassesBalancedAccuracy(num_classes),
        "auroc": DefinedMacroAUROC(num_classes),
    }
    if num_classes == 2:
        metrics["auprc"] = PositiveClassAveragePrecision()
    return MetricCollection(dict(metrics), prefix=prefix)


def mixture_accuracy(predictions: Predictions) -> float:
    """Accuracy of the mixture of a product's experts: the argmax of the mean of their probabilities.

    The authors' code trains and validates intra as the product but tests it this way
    (``intra_modality.py:244`` in divyam3897/I2M2); every expert counts for every example.
    """
    probs = np.mean([np.exp(lp.astype(np.float64)) for lp in predictions.experts.values()], axis=0)
    return float(np.mean(probs.argmax(axis=1) == predictions.labels))
