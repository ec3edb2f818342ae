"""Checks shared by the model tests."""

from __future__ import annotations

from torch import nn


def check_trains(model: nn.Module, batch, classes: int) -> None:
    """Logits of the right shape, and a backward pass reaches every parameter."""
    logits = model(batch)
    size = len(next(iter(batch.values()))) if isinstance(batch, dict) else len(batch)
    assert logits.shape == (size, classes)
    logits.logsumexp(1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
