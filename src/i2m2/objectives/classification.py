"""What a method is trained and scored on: the loss, the metrics and the model-selection metric.

The default is single-label classification (negative log-likelihood of the product, accuracy, balanced
accuracy, AUROC, AUPRC for two classes). An experiment with other targets - several binary findings
per example, soft VQA answers - gives its own :class:`Objective`; the trainer, the job loop and the run
folder stay the same.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MetricCollection

from i2m2.metrics import classification_metrics
from i2m2.models.validation import check_labels


class Objective:
    """Single-label classification; subclass it for other targets (the experiment's ``monitor`` names
    one of :meth:`metrics`, which early stopping and the best checkpoint follow).

    ``num_tasks``: ``None`` for one label per example (logits ``(B, C)``); T for T labels per example
    (every expert returns ``(B, T, C)`` and each task is its own product of experts).
    """

    num_tasks: int | None = None

    def split_batch(self, inputs: dict[str, Tensor], labels: Tensor) -> tuple[dict[str, Tensor], Any]:
        """The experts' inputs and the loss's target; an objective may pull extra keys out of the batch."""
        return inputs, labels

    def check_target(self, target: Any, num_classes: int) -> None:
        """Checked on the first batch of each loader (checking every step would cost a device sync)."""
        check_labels(target, num_classes)

    def loss(self, log_probs: Tensor, target: Any) -> Tensor:
        return F.nll_loss(log_probs, target)

    def metrics(self, num_classes: int, prefix: str) -> MetricCollection:
        return classification_metrics(num_classes, prefix)

    def update(self, metrics: MetricCollection, log_probs: Tensor, target: Any) -> None:
        metrics.update(log_probs.exp(), target)

    def batch_size(self, target: Any) -> int:
        return len(target)

    def example_scores(self, log_probs: Tensor, target: Any) -> Tensor | None:
        """``(B,)`` per-example scores whose mean is the monitored metric, when the labels and
        log-probabilities saved with the predictions cannot give it (``None``: they can)."""
        return None

    def validation_calibrated(self) -> bool:
        """Whether :meth:`calibrated_metrics` needs the best epoch's validation predictions."""
        return False

    def calibrated_metrics(self, val: Any, test: Any) -> dict[str, float]:
        """Test metrics whose settings are chosen on validation (e.g. a decision threshold); ``val`` and
        ``test`` are :class:`~i2m2.runs.predictions.Predictions`."""
        return {}


CLASSIFICATION = Objective()
