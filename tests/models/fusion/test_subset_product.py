"""The product of subset-conditionals from one null-token network (paper, Section 5)."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from i2m2.models.fusion import NullTokenFusion, SubsetProductFusion
from i2m2.models.i2m2 import I2M2
from i2m2.models.registry import create_fusion

DIMS = {"m0": 5, "m1": 3, "m2": 4}
C = 3


def batch_of(size: int = 6) -> dict[str, torch.Tensor]:
    return {m: torch.randn(size, d) for m, d in DIMS.items()}


def product_of(dims: dict[str, int] = DIMS, **options: Any) -> SubsetProductFusion:
    expert = create_fusion("null-token-product", dims, C, hidden=8, **options)
    assert isinstance(expert, SubsetProductFusion)
    return expert


def explicit_product(
    expert: SubsetProductFusion, batch: dict[str, torch.Tensor], present: set[str]
) -> torch.Tensor:
    """``log_softmax(sum_S log p(y | x_S))`` over every subset S of ``present`` (min_modalities and up), each
    conditional asked of the null-token network on its own."""
    network = expert.network.eval()
    size = len(next(iter(batch.values())))
    total = torch.zeros(size, C)
    for k in range(expert.min_modalities, len(present) + 1):
        for subset in combinations(sorted(present), k):
            mask = {m: torch.full((size,), m in subset) for m in DIMS}
            total += F.log_softmax(network(batch, present=mask), -1)
    return F.log_softmax(total, -1)


def test_every_subset_at_test_time_is_the_explicit_sum_over_subset_conditionals() -> None:
    torch.manual_seed(0)
    expert = product_of().eval()
    assert expert.eval_masks.shape == (7, 3)  # 2^3 - 1 subsets
    batch = batch_of()
    with torch.no_grad():
        torch.testing.assert_close(expert(batch), explicit_product(expert, batch, set(DIMS)))
        # an example without m1 multiplies the subsets of {m0, m2} only; NaN where m1 is absent is never read
        present = {"m1": torch.tensor([True, False, True, False, True, False])}
        nan = batch | {"m1": batch["m1"].masked_fill(~present["m1"].unsqueeze(1), float("nan"))}
        out = expert(nan, present=present)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(
            out[present["m1"]], explicit_product(expert, batch, set(DIMS))[present["m1"]]
        )
        without = explicit_product(expert, batch, {"m0", "m2"})
        torch.testing.assert_close(out[~present["m1"]], without[~present["m1"]])


def test_an_example_below_min_modalities_gets_its_present_set() -> None:
    expert = product_of(min_modalities=2).eval()
    assert expert.eval_masks.sum(1).min() == 2 and len(expert.eval_masks) == 4
    batch = batch_of()
    present = {"m0": torch.zeros(6, dtype=torch.bool), "m1": torch.zeros(6, dtype=torch.bool)}
    with torch.no_grad():
        out = expert(batch, present=present)
        alone = F.log_softmax(expert.network(batch, present=present), -1)
    torch.testing.assert_close(out, alone)


def test_training_samples_k_subsets_of_the_present_modalities_per_example_seeded() -> None:
    expert = product_of(k=5)
    rows = torch.ones(3000, 3, dtype=torch.bool)
    rows[:1000, 1] = False  # some examples already lack a modality
    torch.manual_seed(1)
    subsets = expert.sample_subsets(rows)
    assert subsets.shape == (5, 3000, 3)
    assert not (subsets & ~rows).any(), "a subset holds present modalities only"
    sizes = subsets.sum(-1)
    assert sizes.min() >= 1
    assert set(sizes[:, 1000:].flatten().tolist()) == {1, 2, 3}  # every size, the full set included
    assert set(sizes[:, :1000].flatten().tolist()) == {1, 2}
    # the k draws of one example differ (they are independent), and the seed repeats them
    assert (subsets[0] != subsets[1]).any(-1).float().mean() > 0.5
    torch.manual_seed(1)
    assert torch.equal(expert.sample_subsets(rows), subsets)
    torch.manual_seed(2)
    assert not torch.equal(expert.sample_subsets(rows), subsets)


def test_training_runs_the_encoders_once_and_the_head_k_times() -> None:
    expert = product_of(k=4).train()
    seen: dict[str, list[int]] = {}
    for name, module in [*expert.network.encoders.items(), ("head", expert.network.head)]:
        module.register_forward_hook(
            lambda mod, inp, out, n=name: seen.setdefault(n, []).append(inp[0].shape[0])
        )
    expert(batch_of(10))
    assert seen == {"m0": [10], "m1": [10], "m2": [10], "head": [40]}


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    expert = product_of(k=3).train()
    batch = batch_of(64)
    loss = F.nll_loss(expert(batch), torch.randint(C, (64,)))
    loss.backward()
    for name, p in expert.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_a_fixed_sample_at_test_time_holds_the_full_set_and_is_repeatable() -> None:
    six = {f"m{i}": 2 for i in range(6)}
    every = product_of(six)
    assert len(every.eval_masks) == 63
    sample = product_of(six, eval_subsets=10)
    assert sample.eval_masks.shape == (10, 6) and sample.eval_masks[-1].all()
    assert len({tuple(r.tolist()) for r in sample.eval_masks}) == 10
    assert torch.equal(sample.eval_masks, product_of(six, eval_subsets=10).eval_masks)
    capped = product_of(six, max_eval_subsets=20)
    assert len(capped.eval_masks) == 20 and capped.eval_masks[-1].all()
    batch = {m: torch.randn(4, 2) for m in six}
    with torch.no_grad():
        assert torch.equal(sample.eval()(batch), sample(batch))  # no randomness in evaluation


def test_same_parameters_as_the_single_null_token_network() -> None:
    def count(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    assert count(product_of()) == count(create_fusion("null-token", DIMS, C, hidden=8))
    assert isinstance(product_of().network, NullTokenFusion)


def test_inside_i2m2_with_a_modality_absent() -> None:
    expert = product_of().eval()
    model = I2M2(inter=expert).eval()
    batch = batch_of()
    present = {"m2": torch.tensor([True, False, True, True, False, True])}
    with torch.no_grad():
        torch.testing.assert_close(model(batch, present=present), expert(batch, present=present))


def test_rejects_bad_settings() -> None:
    network = create_fusion("null-token", DIMS, C, hidden=8)
    assert isinstance(network, NullTokenFusion)
    with pytest.raises(ValueError, match=r"k \(subsets per training example\) must be at least 1"):
        SubsetProductFusion(network, k=0)
    with pytest.raises(ValueError, match="eval_subsets"):
        SubsetProductFusion(network, eval_subsets=0)
    with pytest.raises(ValueError, match="max_eval_subsets"):
        SubsetProductFusion(network, max_eval_subsets=0)
