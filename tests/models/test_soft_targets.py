"""Soft-target cross-entropy: targets normalized, no target no loss."""

from __future__ import annotations

import torch

from i2m2.models.soft_targets import soft_target_cross_entropy


def test_soft_target_cross_entropy_normalizes_targets() -> None:
    log_probs = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    targets = torch.tensor([[1.0, 1.0, 0.0]])  # -> (0.5, 0.5, 0)
    expected = -(0.5 * torch.log(torch.tensor(0.5)) + 0.5 * torch.log(torch.tensor(0.25)))
    assert torch.allclose(soft_target_cross_entropy(log_probs, targets), expected)
    assert float(soft_target_cross_entropy(log_probs, torch.zeros(1, 3))) == 0.0
