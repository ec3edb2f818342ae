"""The combiner (Eq. 3) against examples worked out by hand, with and without the prior correction, masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from i2m2.models.product_of_experts import product_of_experts

TASKS, CLASSES = 4, 2


def logits_of(*probs: list[list[float]]) -> list[torch.Tensor]:
    """One expert per argument; its logits are log-probabilities shifted by a constant (3 per expert index).

    The shift checks that the combiner normalizes each expert (log_softmax) before multiplying.
    """
    return [torch.tensor(p, dtype=torch.float64).log() + 3.0 * k for k, p in enumerate(probs)]


def probs(log_probs: torch.Tensor) -> np.ndarray:
    return log_probs.exp().numpy()


# Worked by hand. Expert A says p_A, expert B says p_B, over three classes; the prior is p = (.5, .25, .25).
#   row 0: p_A = (.5, .25, .25), p_B = (.2, .4, .4)  -> p_A p_B = (.1, .1, .1)          -> (1/3, 1/3, 1/3)
#          with the prior divided out once (K = 2):  (.1, .1, .1) / p = (.2, .4, .4)    -> (.2, .4, .4)
#   row 1: p_A = (.6, .3, .1), p_B = (.5, .25, .25)  -> (.3, .075, .025), sum .4        -> (.75, .1875, .0625)
#          with the prior:                            (.6, .3, .1)                       -> (.6, .3, .1)
P_A = [[0.5, 0.25, 0.25], [0.6, 0.3, 0.1]]
P_B = [[0.2, 0.4, 0.4], [0.5, 0.25, 0.25]]
PRIOR = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)


def test_product_of_two_experts_matches_hand_computation() -> None:
    got = probs(product_of_experts(logits_of(P_A, P_B)))
    np.testing.assert_allclose(got, [[1 / 3, 1 / 3, 1 / 3], [0.75, 0.1875, 0.0625]], atol=1e-12)


def test_prior_correction_divides_the_prior_out_k_minus_one_times() -> None:
    got = probs(product_of_experts(logits_of(P_A, P_B), log_prior=PRIOR.log()))
    np.testing.assert_allclose(got, [[0.2, 0.4, 0.4], [0.6, 0.3, 0.1]], atol=1e-12)


def test_three_experts_count_the_prior_three_times() -> None:
    # Three experts that each say p: the plain product is p^3 / sum p^3 = (.125, .015625, .015625) / .15625
    # = (.8, .1, .1); dividing the prior out K - 1 = 2 times leaves p itself.
    p = [[0.5, 0.25, 0.25]]
    plain = probs(product_of_experts(logits_of(p, p, p)))
    corrected = probs(product_of_experts(logits_of(p, p, p), log_prior=PRIOR.log()))
    np.testing.assert_allclose(plain, [[0.8, 0.1, 0.1]], atol=1e-12)
    np.testing.assert_allclose(corrected, [[0.5, 0.25, 0.25]], atol=1e-12)


def test_presence_mask_uses_only_the_experts_present_per_example() -> None:
    # Rows: both experts; only A; only B; none. K per row is 2, 1, 1, 0.
    p_a = [[0.6, 0.3, 0.1]] * 4
    p_b = [[0.5, 0.25, 0.25]] * 4
    present = [torch.tensor([True, True, False, False]), torch.tensor([True, False, True, False])]
    got = probs(product_of_experts(logits_of(p_a, p_b), present))
    expected = [[0.75, 0.1875, 0.0625], [0.6, 0.3, 0.1], [0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]]
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_presence_mask_with_prior_uses_k_present_per_example() -> None:
    # K = 2: (.6, .3, .1) as in the hand example; K = 1: no correction, the expert itself; K = 0: the prior
    # (the correction adds it back once: -(0 - 1) log p).
    p_a = [[0.6, 0.3, 0.1]] * 4
    p_b = [[0.5, 0.25, 0.25]] * 4
    present = [torch.tensor([True, True, False, False]), torch.tensor([True, False, True, False])]
    got = probs(product_of_experts(logits_of(p_a, p_b), present, PRIOR.log()))
    expected = [[0.6, 0.3, 0.1], [0.6, 0.3, 0.1], [0.5, 0.25, 0.25], [0.5, 0.25, 0.25]]
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_matches_numpy_formula_on_random_logits() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4, 7, 5)) * 3  # K experts, B examples, C classes
    mask = rng.random((4, 7)) < 0.6
    log_prior = np.log(rng.dirichlet(np.ones(5)))

    def log_softmax(a: np.ndarray) -> np.ndarray:
        a = a - a.max(-1, keepdims=True)
        return a - np.log(np.exp(a).sum(-1, keepdims=True))

    total = (log_softmax(z) * mask[..., None]).sum(0) - (mask.sum(0)[:, None] - 1) * log_prior
    expected = log_softmax(total)
    got = product_of_experts(
        list(torch.from_numpy(z)), list(torch.from_numpy(mask)), torch.from_numpy(log_prior)
    )
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-10)


def test_one_expert_is_its_own_softmax() -> None:
    z = torch.randn(4, 6)
    torch.testing.assert_close(product_of_experts([z]), torch.log_softmax(z, -1))
    # With K = 1 the correction removes nothing.
    torch.testing.assert_close(product_of_experts([z], log_prior=torch.randn(6)), torch.log_softmax(z, -1))


def test_gradient_does_not_reach_absent_examples() -> None:
    z = [torch.randn(3, 4, requires_grad=True), torch.randn(3, 4, requires_grad=True)]
    present = [torch.tensor([True, False, True]), torch.tensor([True, True, False])]
    product_of_experts(z, present)[:, 0].sum().backward()
    assert z[0].grad is not None and z[1].grad is not None
    assert torch.all(z[0].grad[1] == 0) and torch.all(z[1].grad[2] == 0)
    assert z[0].grad[0].abs().sum() > 0 and z[1].grad[1].abs().sum() > 0


@pytest.mark.parametrize(
    ("logits", "present", "log_prior", "match"),
    [
        ([], None, None, "at least one expert"),
        ([torch.zeros(2, 3), torch.zeros(2, 4)], None, None, "one shape"),
        ([torch.zeros(2, 3)], [torch.ones(2, dtype=torch.bool)] * 2, None, "expected 1"),
        ([torch.zeros(2, 3)], [torch.ones(2)], None, "presence mask 0: expected a bool tensor of shape"),
        ([torch.zeros(2, 3)], [torch.ones(3, dtype=torch.bool)], None, r"shape \(2,\)"),
        ([torch.zeros(2, 3)], None, torch.zeros(4), r"log_prior: expected shape \(3,\)"),
    ],
)
def test_rejects_inconsistent_inputs(
    logits: list[torch.Tensor], present: list[torch.Tensor] | None, log_prior: torch.Tensor | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        product_of_experts(logits, present, log_prior)


# ---- multi-task: one product per task (fastMRI findings) ------------------------------------------------


def test_multitask_product_is_normalized_per_task_and_equals_the_per_task_products() -> None:
    torch.manual_seed(0)
    logits = [torch.randn(5, TASKS, CLASSES, dtype=torch.float64) * 3 for _ in range(3)]
    present = [
        torch.tensor([True, True, False, True, False]),
        torch.ones(5, dtype=torch.bool),
        torch.tensor([False, True, True, True, False]),
    ]
    log_prior = torch.log_softmax(torch.randn(TASKS, CLASSES, dtype=torch.float64), -1)
    joint = product_of_experts(logits, present, log_prior)
    assert joint.shape == (5, TASKS, CLASSES)
    torch.testing.assert_close(joint.exp().sum(-1), torch.ones(5, TASKS, dtype=torch.float64))
    for t in range(TASKS):
        alone = product_of_experts([z[:, t] for z in logits], present, log_prior[t])
        torch.testing.assert_close(joint[:, t], alone)


def test_multitask_product_by_hand() -> None:
    # Task 0: experts say (.8, .2) and (.5, .5) -> (.8, .2). Task 1: (.5, .5) and (.25, .75) -> (.25, .75).
    a = torch.tensor([[[0.8, 0.2], [0.5, 0.5]]]).log()
    b = torch.tensor([[[0.5, 0.5], [0.25, 0.75]]]).log() + 7.0  # a shift the softmax must remove
    got = product_of_experts([a, b]).exp()
    torch.testing.assert_close(got, torch.tensor([[[0.8, 0.2], [0.25, 0.75]]]))


def test_multitask_prior_of_the_wrong_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"log_prior: expected shape \(4, 2\)"):
        product_of_experts([torch.zeros(3, TASKS, CLASSES)], log_prior=torch.zeros(CLASSES))
