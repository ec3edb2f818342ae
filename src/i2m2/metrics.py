"""The metrics every run reports: torchmetrics objects (so they sync across processes), and the
mixture accuracy the authors' code reports for products, from saved predictions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import BinaryAveragePrecision, MulticlassAccuracy, MulticlassAUROC

if TYPE_CHECKING:  # only the type: run folders sit above this module
    from i2m2.runs.predictions import Predictions


class PositiveClassAveragePrecision(BinaryAveragePrecision):
    """AUPRC of class 1 for two-class tasks, fed with the (B, 2) probabilities the model produces."""

    def update(self, preds: Tensor, target: Tensor) -> None:
        super().update(preds[:, 1], target)


def classification_metrics(num_classes: int, prefix: str) -> MetricCollection:
    """Accuracy, balanced accuracy (macro recall), macro AUROC, and AUPRC when there are two classes."""
    metrics: dict[str, Metric] = {
        "acc": MulticlassAccuracy(num_classes=num_classes, average="micro"),
        "balanced_acc": MulticlassAccuracy(num_classes=num_classes, average="macro"),
        "auroc": MulticlassAUROC(num_classes=num_classes, average="macro"),
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
