"""Early fusion: inputs flattened or joined along an axis, mismatched shapes named."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from i2m2.models.fusion import EarlyFusion


def test_early_fusion_flattens_and_joins_inputs() -> None:
    fusion = EarlyFusion(["a", "b"], nn.Identity(), flatten=True)
    a, b = torch.randn(2, 2, 3), torch.randn(2, 4)
    torch.testing.assert_close(fusion({"a": a, "b": b}), torch.cat([a.flatten(1), b], 1))


@pytest.mark.parametrize("dim", [1, -3])
def test_early_fusion_joins_images_as_channels(dim: int) -> None:
    fusion = EarlyFusion(["mag", "phase"], nn.Identity(), dim=dim)
    mag, phase = torch.randn(2, 1, 4, 5), torch.randn(2, 2, 4, 5)
    torch.testing.assert_close(fusion({"mag": mag, "phase": phase}), torch.cat([mag, phase], 1))


@pytest.mark.parametrize("dim", [-1, 3])
def test_early_fusion_joins_along_the_last_axis(dim: int) -> None:
    fusion = EarlyFusion(["a", "b"], nn.Identity(), dim=dim)
    a, b = torch.randn(2, 1, 4, 5), torch.randn(2, 1, 4, 2)
    torch.testing.assert_close(fusion({"a": a, "b": b}), torch.cat([a, b], -1))


def test_early_fusion_names_the_mismatched_shapes() -> None:
    fusion = EarlyFusion(["mag", "phase"], nn.Identity(), dim=1)
    with pytest.raises(ValueError, match=r"every other axis must match.*'mag': \(2, 1, 4, 5\)"):
        fusion({"mag": torch.randn(2, 1, 4, 5), "phase": torch.randn(2, 1, 4, 6)})
