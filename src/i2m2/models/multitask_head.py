"""A linear head for several classification tasks at once: features -> ``(batch, tasks, classes)`` logits.

fastMRI has four findings per slice, each a binary task; one expert predicts all four, and the product of
experts combines the experts per task (:func:`i2m2.models.product_of_experts.product_of_experts`).
"""

from __future__ import annotations

from torch import Tensor, nn


class MultiTaskHead(nn.Module):
    """``Linear(in_features, tasks * classes)`` reshaped to ``(batch, tasks, classes)``."""

    def __init__(self, in_features: int, tasks: int, classes: int = 2) -> None:
        super().__init__()
        self.tasks, self.classes = tasks, classes
        self.linear = nn.Linear(in_features, tasks * classes)

    def forward(self, features: Tensor) -> Tensor:
        return self.linear(features).view(-1, self.tasks, self.classes)
