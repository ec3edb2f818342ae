"""The fusion registry: every registered fusion is an expert; options and unknown names."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from i2m2.models import registry
from i2m2.models.expert import Expert
from i2m2.models.fusion import EarlyFusion, LateFusion, LowRankTensorFusion, NullTokenFusion, TensorFusion
from i2m2.models.fusion.tensor import tensor_fusion_dim
from i2m2.models.registry import FUSIONS, create_fusion, register_fusion

DIMS = {"m0": 5, "m1": 3, "m2": 4}


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
@pytest.mark.parametrize("num_modalities", [2, 3])
def test_every_registered_fusion_is_an_expert_over_its_modalities(fusion: str, num_modalities: int) -> None:
    dims = dict(list(DIMS.items())[:num_modalities])
    expert = create_fusion(fusion, dims, num_classes=4, hidden=8)
    assert isinstance(expert, Expert)
    assert expert.modalities == tuple(dims)
    logits = expert({m: torch.randn(6, d) for m, d in dims.items()})
    assert logits.shape == (6, 4)
    assert torch.isfinite(logits).all()


def test_registry_holds_the_four_fusions_of_the_issue() -> None:
    assert {"early", "late", "lrtf", "tensor"} <= set(FUSIONS)


def test_register_fusion_adds_a_selectable_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "FUSIONS", dict(FUSIONS))

    @register_fusion("sum-of-linear")
    def _builder(input_dims: dict[str, int], num_classes: int, hidden: int = 64) -> Expert:
        return LateFusion({m: nn.Linear(d, num_classes) for m, d in input_dims.items()}, nn.Identity())

    expert = create_fusion("sum-of-linear", {"a": 2, "b": 3}, num_classes=5)
    assert expert.modalities == ("a", "b")
    assert expert({"a": torch.randn(2, 2), "b": torch.randn(2, 3)}).shape == (2, 10)
    assert "sum-of-linear" not in FUSIONS  # the real registry is untouched


def test_unknown_fusion_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown fusion 'nope'.*early"):
        create_fusion("nope", DIMS, num_classes=2)


def test_create_fusion_passes_each_fusions_own_options() -> None:
    lrtf = create_fusion("lrtf", DIMS, num_classes=4, rank=4, output_dim=6, feature_dim=5, hidden=8)
    assert isinstance(lrtf, LowRankTensorFusion)
    assert lrtf.factors["m0"].shape == (4, 5 + 1, 6)
    tensor = create_fusion("tensor", DIMS, num_classes=4, feature_dim=2, hidden=8)
    assert isinstance(tensor, TensorFusion)
    assert tensor({m: torch.randn(2, d) for m, d in DIMS.items()}).shape == (2, 4)
    assert first_linear(tensor.head).in_features == tensor_fusion_dim(dict.fromkeys(DIMS, 2)) == 27
    late = create_fusion("late", DIMS, num_classes=4, hidden=8, feature_dim=3)
    assert isinstance(late, LateFusion) and first_linear(late.head).in_features == 3 * 3
    null = create_fusion("null-token", DIMS, num_classes=4, subset_prob=0.25, min_modalities=2)
    assert isinstance(null, NullTokenFusion) and (null.subset_prob, null.min_modalities) == (0.25, 2)
    early = create_fusion("early", DIMS, num_classes=4, hidden=8, layers=3)
    assert isinstance(early, EarlyFusion)
    assert sum(isinstance(layer, nn.Linear) for layer in early.network.modules()) == 4


def first_linear(module: nn.Module) -> nn.Linear:
    return next(layer for layer in module.modules() if isinstance(layer, nn.Linear))


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_unknown_option_names_the_fusion_and_its_options(fusion: str) -> None:
    with pytest.raises(TypeError, match=rf"fusion '{fusion}' has no option\(s\) \['rnak'\].*hidden=64"):
        create_fusion(fusion, DIMS, num_classes=4, rnak=3)
