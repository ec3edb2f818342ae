"""The synthetic generator (Eq. 1): seeded, the selection holds, and its two limits checked statistically."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from i2m2.data.multimodal_dataset import MultimodalDataset
from i2m2.data.synthetic import SyntheticTask


def arrays(data: MultimodalDataset) -> tuple[list[np.ndarray], np.ndarray]:
    return [x.numpy() for x in data.inputs.values()], data.labels.numpy()


def chance_margin(num_classes: int, n: int, sigmas: float = 4.0) -> float:
    """Held-out accuracy of any classifier whose input is independent of a uniform label is exactly
    Binomial(n, 1/K) / n, so it stays within ``sigmas`` standard deviations of 1/K except with
    probability < 1e-4 (4 sigmas)."""
    p = 1 / num_classes
    return sigmas * math.sqrt(p * (1 - p) / n)


def test_same_seeds_give_the_same_data() -> None:
    task = SyntheticTask(num_classes=3, num_modalities=3, dim=4, seed=7)
    a, b = task.sample(50, seed=1), SyntheticTask(3, 3, 4, seed=7).sample(50, seed=1)
    assert a.modalities == ("m0", "m1", "m2")
    assert all(a.inputs[m].shape == (50, 4) for m in a.modalities)
    assert all(torch.equal(a.inputs[m], b.inputs[m]) for m in a.modalities)
    assert torch.equal(a.labels, b.labels)
    other_sample = task.sample(50, seed=2)
    other_world = SyntheticTask(3, 3, 4, seed=8).sample(50, seed=1)
    assert not torch.equal(a.inputs["m0"], other_sample.inputs["m0"])
    assert not torch.equal(a.inputs["m0"], other_world.inputs["m0"])
    assert torch.equal(a.labels, other_world.labels)  # the world changes the vectors, not the draws


def test_splits_are_seeded_and_independent() -> None:
    task = SyntheticTask(num_classes=4, dim=3)
    first, again, other = (
        task.splits(30, 20, 40, seed=0),
        task.splits(30, 20, 40, seed=0),
        task.splits(30, 20, 40, 1),
    )
    assert (len(first.train), len(first.val), len(first.test), first.num_classes) == (30, 20, 40, 4)
    assert torch.equal(first.test.inputs["m1"], again.test.inputs["m1"])
    assert not torch.equal(first.test.inputs["m1"], other.test.inputs["m1"])
    assert not torch.equal(first.train.inputs["m1"][:20], first.val.inputs["m1"])


@pytest.mark.parametrize("num_modalities", [2, 3])
def test_the_codes_sum_to_the_label_modulo_k(num_modalities: int) -> None:
    # Without noise and intra, x_m = b_m[z_m]: decode each code by its nearest code vector.
    task = SyntheticTask(num_classes=5, num_modalities=num_modalities, dim=8, intra=0.0, inter=1.0, noise=0.0)
    data = task.sample(300, seed=3)
    _, b = task.vectors()
    codes = [torch.cdist(data.inputs[m], b[i]).argmin(1) for i, m in enumerate(task.modalities)]
    assert torch.equal(torch.stack(codes).sum(0) % 5, data.labels)
    assert all(len(c.unique()) == 5 for c in codes)  # every code occurs in every modality


@pytest.mark.slow
@pytest.mark.parametrize("num_modalities", [2, 3])
def test_at_intra_zero_each_modality_alone_is_at_chance_and_together_they_predict(
    num_modalities: int,
) -> None:
    k, n_test = 4, 4000
    task = SyntheticTask(k, num_modalities, dim=6, intra=0.0, inter=3.0, noise=0.5, seed=0)
    (train, y_train), (test, y_test) = arrays(task.sample(2000, seed=1)), arrays(task.sample(n_test, seed=2))
    margin = chance_margin(k, n_test)
    for m, (x_train, x_test) in enumerate(zip(train, test, strict=True)):
        linear = LogisticRegression(max_iter=300).fit(x_train, y_train)
        accuracy = linear.score(x_test, y_test)
        assert abs(accuracy - 1 / k) < margin, f"modality m{m} alone: accuracy {accuracy:.3f}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        joint = MLPClassifier((64,), max_iter=150, random_state=0).fit(np.hstack(train), y_train)
    assert joint.score(np.hstack(test), y_test) > 0.8


def test_at_intra_zero_any_m_minus_one_modalities_are_at_chance() -> None:
    # With three modalities, any two codes are uniform and independent of y. Their outer product is a
    # feature from which a linear model can read both codes (with two modalities it predicts y), yet with
    # three it stays at chance.
    k, n_test = 3, 3000

    def pair_accuracy(num_modalities: int) -> float:
        task = SyntheticTask(k, num_modalities, dim=4, intra=0.0, inter=3.0, noise=0.3, seed=1)
        (train, y_train), (test, y_test) = arrays(task.sample(2000, seed=1)), arrays(task.sample(n_test, 2))

        def pair(x: list[np.ndarray]) -> np.ndarray:
            return np.einsum("bi,bj->bij", x[0], x[1]).reshape(len(x[0]), -1)

        return LogisticRegression(max_iter=300).fit(pair(train), y_train).score(pair(test), y_test)

    assert abs(pair_accuracy(3) - 1 / k) < chance_margin(k, n_test)
    assert pair_accuracy(2) > 0.9


def test_with_intra_each_modality_alone_is_far_above_chance() -> None:
    # The control for the chance test above: the same classifier does find the label when intra > 0.
    k, n_test = 4, 4000
    task = SyntheticTask(k, 2, dim=6, intra=1.0, inter=0.0, noise=1.0, seed=0)
    (train, y_train), (test, y_test) = arrays(task.sample(2000, seed=1)), arrays(task.sample(n_test, seed=2))
    for x_train, x_test in zip(train, test, strict=True):
        accuracy = LogisticRegression(max_iter=300).fit(x_train, y_train).score(x_test, y_test)
        assert accuracy > 1 / k + 10 * chance_margin(k, n_test, sigmas=1)


def cross_correlation_statistic(
    first: np.ndarray, second: np.ndarray, labels: np.ndarray
) -> tuple[float, int]:
    """Sum over classes of n_k * (squared within-class correlations between the two modalities' features).

    Under conditional independence with Gaussian features whose coordinates are independent within a class,
    sqrt(n_k) r_ij is asymptotically N(0, 1) and independent across (i, j, k): the sum is chi^2 with
    K * d * d degrees of freedom.
    """
    total, df = 0.0, 0
    for k in np.unique(labels):
        a, b = first[labels == k], second[labels == k]
        a = (a - a.mean(0)) / a.std(0)
        b = (b - b.mean(0)) / b.std(0)
        r = a.T @ b / len(a)
        total += len(a) * float((r**2).sum())
        df += r.size
    return total, df


@pytest.mark.parametrize("num_modalities", [2, 3])
def test_at_inter_zero_the_modalities_are_conditionally_independent(num_modalities: int) -> None:
    task = SyntheticTask(3, num_modalities, dim=4, intra=1.5, inter=0.0, noise=1.0, seed=2)
    x, y = arrays(task.sample(6000, seed=5))
    for i in range(num_modalities):
        for j in range(i + 1, num_modalities):
            statistic, df = cross_correlation_statistic(x[i], x[j], y)
            p_value = stats.chi2.sf(statistic, df)
            assert p_value > 1e-4, f"m{i}, m{j}: chi2 = {statistic:.1f} on {df} df"
    # ... while the modalities are dependent unconditionally (both depend on y): the test has power.
    unconditional, df = cross_correlation_statistic(x[0], x[1], np.zeros_like(y))
    assert stats.chi2.sf(unconditional, df) < 1e-10


def test_with_inter_the_modalities_are_dependent_within_each_class() -> None:
    task = SyntheticTask(3, 2, dim=4, intra=1.0, inter=1.0, noise=1.0, seed=2)
    x, y = arrays(task.sample(6000, seed=5))
    statistic, df = cross_correlation_statistic(x[0], x[1], y)
    assert stats.chi2.sf(statistic, df) < 1e-10, f"chi2 = {statistic:.1f} on {df} df"
