"""The metrics every run reports, as torchmetrics objects (so they sync across processes)."""

from __future__ import annotations

from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import BinaryAveragePrecision, MulticlassAccuracy, MulticlassAUROC


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
