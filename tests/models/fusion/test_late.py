"""Late fusion: encoder features concatenated in modality order."""

from __future__ import annotations

import torch
from torch import nn

from i2m2.models.fusion import LateFusion


def test_late_fusion_concatenates_encoder_features_in_modality_order() -> None:
    fusion = LateFusion({"b": nn.Identity(), "a": nn.Identity()}, nn.Identity())
    a, b = torch.randn(2, 3), torch.randn(2, 2)
    torch.testing.assert_close(fusion({"a": a, "b": b}), torch.cat([b, a], 1))
