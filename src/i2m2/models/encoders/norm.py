"""The normalization layer of the image encoders: GroupNorm (the authors' fastMRI choice) or BatchNorm."""

from __future__ import annotations

import math
from typing import Literal

from torch import nn

Norm = Literal["group", "batch"]


def norm2d(kind: Norm, channels: int, groups: int = 32) -> nn.Module:
    """GroupNorm with ``groups`` groups (fewer when ``channels`` is small, so they divide it) or BatchNorm.

    GroupNorm does not depend on the batch, so training and evaluation behave the same and small batches
    of large MR slices are fine.
    """
    if kind == "group":
        return nn.GroupNorm(math.gcd(groups, channels), channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"norm: expected 'group' or 'batch', got {kind!r}")


def parameter_count(module: nn.Module) -> int:
    """Number of parameters (sum of numel), to compare models of equal budget (paper Section 4.6)."""
    return sum(p.numel() for p in module.parameters())
