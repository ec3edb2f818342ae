"""The null-token fusion: one network for every subset of the modalities (paper, Section 5)."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import pytest
import torch
from torch import nn

from i2m2.models.fusion import NullTokenFusion
from i2m2.models.i2m2 import I2M2
from i2m2.models.registry import create_fusion

DIMS = {"m0": 5, "m1": 3, "m2": 4}
C = 3


def batch_of(size: int = 6) -> dict[str, torch.Tensor]:
    return {m: torch.randn(size, d) for m, d in DIMS.items()}


def null_token(dims: dict[str, int] = DIMS, **options: Any) -> NullTokenFusion:
    expert = create_fusion("null-token", dims, C, **options)
    assert isinstance(expert, NullTokenFusion)
    return expert


def rows_seen(expert: NullTokenFusion) -> dict[str, list[int]]:
    """Record how many rows each encoder is called on."""
    seen: dict[str, list[int]] = {m: [] for m in expert.modalities}
    for m, encoder in expert.encoders.items():
        encoder.register_forward_hook(lambda mod, inp, out, m=m: seen[m].append(inp[0].shape[0]))
    return seen


def test_every_subset_absent_gives_finite_logits_that_ignore_absent_values() -> None:
    expert = null_token(hidden=8).eval()
    batch = batch_of()
    for size in range(len(DIMS) + 1):
        for absent in combinations(DIMS, size):
            present = {m: torch.full((6,), m not in absent) for m in DIMS}
            garbage = {m: x.masked_fill(~present[m].unsqueeze(1), float("nan")) for m, x in batch.items()}
            logits = expert(garbage, present=present)
            assert logits.shape == (6, C) and torch.isfinite(logits).all(), absent
            # the same as leaving the absent modalities out of the batch
            kept = {m: x for m, x in batch.items() if m not in absent}
            if kept:
                torch.testing.assert_close(logits, expert(kept))


def test_absent_rows_get_the_null_token_and_never_reach_the_encoder() -> None:
    expert = null_token(hidden=8).eval()
    seen = rows_seen(expert)
    batch = batch_of()
    present = {"m1": torch.tensor([True, False, True, False, False, True])}
    batch["m1"] = batch["m1"].masked_fill(~present["m1"].unsqueeze(1), float("nan"))
    logits = expert(batch, present=present)
    assert seen == {"m0": [6], "m1": [3], "m2": [6]}
    logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in expert.parameters() if p.grad is not None)
    assert expert.null_tokens["m1"].grad is not None and expert.null_tokens["m1"].grad.abs().sum() > 0
    assert expert.null_tokens["m0"].grad is None or expert.null_tokens["m0"].grad.abs().sum() == 0


def test_random_subsets_drop_modalities_in_train_mode_only() -> None:
    torch.manual_seed(0)
    expert = null_token(hidden=8, subset_prob=1.0)
    seen = rows_seen(expert)
    expert.train()
    expert(batch_of(200))
    assert all(0 < rows[0] < 200 for rows in seen.values()), seen
    for rows in seen.values():
        rows.clear()
    expert.eval()
    expert(batch_of(200))
    assert seen == {m: [200] for m in DIMS}


@pytest.mark.parametrize("min_modalities", [1, 2])
def test_random_subsets_are_non_empty_strict_subsets_of_every_size(min_modalities: int) -> None:
    torch.manual_seed(0)
    expert = NullTokenFusion(
        {m: nn.Identity() for m in "abcd"}, dict.fromkeys("abcd", 1), nn.Identity(), 1.0, min_modalities
    )
    rows = torch.ones(4000, 4, dtype=torch.bool)
    rows[:1000, 0] = False  # some examples already lack a modality
    kept = expert.random_subsets(rows)
    assert not (kept & ~rows).any(), "a subset only drops modalities"
    sizes = kept.sum(1)
    assert set(sizes[1000:].tolist()) == set(range(min_modalities, 4))  # every strict subset size, evenly
    assert set(sizes[:1000].tolist()) == set(range(min_modalities, 3))
    counts = torch.bincount(sizes[1000:])[min_modalities:].float()
    assert counts.min() > 0.8 * counts.mean()
    half = NullTokenFusion({m: nn.Identity() for m in "abcd"}, dict.fromkeys("abcd", 1), nn.Identity(), 0.5)
    full = (half.random_subsets(rows[1000:]).sum(1) == 4).float().mean()
    assert 0.45 < full < 0.55, "subset_prob = 0.5 keeps about half of the examples whole"


def test_parameter_count_is_linear_in_the_number_of_modalities() -> None:
    def count(m: int) -> int:
        return sum(
            p.numel() for p in create_fusion("null-token", {f"m{i}": 7 for i in range(m)}, C).parameters()
        )

    assert count(6) - count(3) == count(9) - count(6) == 3 * (count(4) - count(3))


def test_null_token_is_normalized_inside_i2m2() -> None:
    model = I2M2(
        experts={m: nn.Linear(d, C) for m, d in DIMS.items()}, inter=create_fusion("null-token", DIMS, C)
    )
    present = {"m2": torch.tensor([True, False, True, True, False, True])}
    log_probs = model(batch_of(), present=present)
    assert log_probs.shape == (6, C) and torch.isfinite(log_probs).all()
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(6))


def test_i2m2_keeps_the_null_token_expert_for_examples_with_a_modality_absent() -> None:
    expert = create_fusion("null-token", DIMS, C).eval()
    model = I2M2(inter=expert).eval()
    batch = batch_of()
    present = {"m2": torch.tensor([True, False, True, True, False, True])}
    expected = torch.log_softmax(expert(batch, present=present), -1)
    torch.testing.assert_close(model(batch, present=present), expected)


def test_rejects_bad_settings_and_masks() -> None:
    encoders = {"a": nn.Identity(), "b": nn.Identity()}
    with pytest.raises(ValueError, match="subset_prob"):
        NullTokenFusion(encoders, {"a": 1, "b": 1}, nn.Identity(), subset_prob=1.5)
    with pytest.raises(ValueError, match="min_modalities"):
        NullTokenFusion(encoders, {"a": 1, "b": 1}, nn.Identity(), min_modalities=3)
    with pytest.raises(ValueError, match=r"feature_dims lacks the modalities \['b'\]"):
        NullTokenFusion(encoders, {"a": 1}, nn.Identity())
    expert = create_fusion("null-token", DIMS, C)
    with pytest.raises(ValueError, match="presence mask of 'm0'"):
        expert(batch_of(), present={"m0": torch.ones(6)})
    with pytest.raises(ValueError, match="none of the modalities"):
        expert({"other": torch.randn(6, 2)})
