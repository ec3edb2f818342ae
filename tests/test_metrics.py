"""Metrics computed by hand."""

from __future__ import annotations

import math

import numpy as np

from i2m2.runs.predictions import Predictions


def test_mixture_accuracy_by_hand():
    from i2m2.metrics import mixture_accuracy

    # expert 1 says class 0 firmly on example 0; expert 2 says class 1 mildly: mixture 0.55 vs 0.45 -> 0
    p1 = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    p2 = np.array([[0.2, 0.8], [0.4, 0.6], [0.1, 0.9]])
    predictions = Predictions(
        labels=np.array([0, 0, 1]),
        log_probs=np.zeros((3, 2)),
        experts={"a": np.log(p1), "b": np.log(p2)},
    )
    # mixtures: [0.55, 0.45] -> 0 (right), [0.3, 0.7] -> 1 (wrong), [0.3, 0.7] -> 1 (right)
    assert math.isclose(mixture_accuracy(predictions), 2 / 3)
