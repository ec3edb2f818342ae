"""The VQA objective: soft-target loss and VQA score per OOD subset, by hand."""

from __future__ import annotations

import pytest
import torch

from i2m2.data.vqa_vs import OOD_SUBSETS
from i2m2.objectives.vqa import VQAObjective


def test_soft_target_loss_equals_hand_computation() -> None:
    """Answers {0: 4 humans, 2: 1 human}: targets (1, 0, 1/3) normalized to (3/4, 0, 1/4)."""
    log_probs = torch.log_softmax(torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]]), dim=1)
    inputs = {
        "image": torch.zeros(2, 1),
        "answer_labels": torch.tensor([[0, 2] + [-1] * 8, [1] + [-1] * 9]),
        "answer_counts": torch.tensor([[4.0, 1.0] + [0.0] * 8, [2.0] + [0.0] * 9]),
    }
    objective = VQAObjective(OOD_SUBSETS)
    rest, target = objective.split_batch(inputs, torch.tensor([0, 1]))
    assert set(rest) == {"image"}
    expected = (-(0.75 * log_probs[0, 0] + 0.25 * log_probs[0, 2]) - log_probs[1, 1]) / 2
    assert torch.allclose(objective.loss(log_probs, target), expected)
    metrics = objective.metrics(3, "test/")
    target.ood = torch.tensor([[True] * 9, [False] * 8 + [True]])
    objective.update(metrics, log_probs, target)
    scores = {k: float(v) for k, v in metrics.compute().items()}
    # question 0: top answer 0, 4 humans -> 1; question 1: top answer 0 (tie broken low), 0 humans -> 0
    assert scores["test/vqa_score"] == pytest.approx(0.5) and scores["test/ood_QT"] == pytest.approx(1.0)
    assert scores["test/ood_QT+KW+KO"] == pytest.approx(0.5)
    assert scores["test/ood"] == pytest.approx((8 * 1.0 + 0.5) / 9)
