"""The multi-task objective: the decision threshold is chosen on validation, never on test."""

from __future__ import annotations

import numpy as np

from i2m2.objectives.multitask import (
    MultiTaskObjective,
    balanced_accuracy,
    best_threshold,
)
from i2m2.runs.predictions import Predictions


def predictions(scores: list[float], labels: list[int]) -> Predictions:
    p = np.array(scores)[:, None]
    log_probs = np.log(np.stack([1 - p, p], axis=-1))  # (N, 1, 2)
    return Predictions(labels=np.array(labels)[:, None], log_probs=log_probs)


def test_the_threshold_is_chosen_on_validation_not_on_test() -> None:
    # Validation separates at 0.5; on test the best threshold would be 0.25 (perfect), 0.5 gives 0.75.
    val = predictions([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9], [0, 0, 0, 0, 1, 1, 1, 1])
    test = predictions([0.1, 0.2, 0.3, 0.4, 0.15, 0.22], [0, 0, 1, 1, 0, 0])
    objective = MultiTaskObjective(["finding"])
    threshold = best_threshold(np.exp(val.log_probs[:, 0, 1]), val.labels[:, 0])
    assert 0.4 < threshold < 0.6
    scores, labels = np.exp(test.log_probs[:, 0, 1]), test.labels[:, 0]
    assert balanced_accuracy(scores, labels, best_threshold(scores, labels)) == 1.0
    assert objective.calibrated_metrics(val, test) == {"balanced_acc_finding": 0.5, "balanced_acc": 0.5}
