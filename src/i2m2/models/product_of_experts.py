"""Eq. (3) of the paper: p(y | x, x') ∝ p(y) q_x(y|x) q_x'(y|x') q_xx'(y|x, x').

Each expert's logits become log-probabilities; their sum, renormalized, is the product of experts.
Several tasks at once (e.g. four findings per knee slice) are logits ``(batch, tasks, classes)``: every
task is its own product, normalized over its own classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def product_of_experts(
    expert_logits: Sequence[Tensor],
    present: Sequence[Tensor] | None = None,
    log_prior: Tensor | None = None,
) -> Tensor:
    """Combine K experts into one normalized ``log p(y | x)`` of the experts' shape.

    Args:
        expert_logits: K tensors ``(batch, classes)``, or ``(batch, tasks, classes)`` for several tasks:
            the softmax, the product and the renormalization then run over the classes of each task.
        present: optional K boolean tensors ``(batch,)``; an expert contributes to an example only where
            it is True (its modalities are present). An example with no expert gets the prior (or uniform).
        log_prior: optional ``log p(y)`` ``(classes,)`` (``(tasks, classes)`` with tasks). Each
            discriminative expert already contains the prior, so the product carries it K times; this
            subtracts ``(K - 1) log p(y)`` per example, with K the number of experts present for it.
    """
    _check_inputs(expert_logits, present, log_prior)
    log_probs = torch.stack([F.log_softmax(z, dim=-1) for z in expert_logits])  # (K, B, [T,] C)
    if present is None:
        mask = torch.ones(log_probs.shape[:2], dtype=torch.bool, device=log_probs.device)
    else:
        mask = torch.stack([p.to(log_probs.device) for p in present])  # (K, B)
    mask = mask.view(*mask.shape, *[1] * (log_probs.dim() - 2))  # (K, B, [1,] 1): same for every task
    total = torch.where(mask, log_probs, torch.zeros_like(log_probs)).sum(0)
    if log_prior is not None:
        experts_used = mask.sum(0).to(log_probs.dtype)  # (B, [1,] 1)
        total = total - (experts_used - 1) * log_prior.to(total)
    return F.log_softmax(total, dim=-1)


def _check_inputs(
    expert_logits: Sequence[Tensor], present: Sequence[Tensor] | None, log_prior: Tensor | None
) -> None:
    """Shapes must agree: K logits ``(B, [T,] C)``, K bool masks ``(B,)``, a prior ``([T,] C)``."""
    if len(expert_logits) == 0:
        raise ValueError("product_of_experts needs at least one expert's logits")
    shape = tuple(expert_logits[0].shape)
    if len(shape) not in (2, 3) or any(tuple(z.shape) != shape for z in expert_logits):
        shapes = [tuple(z.shape) for z in expert_logits]
        raise ValueError(
            f"expert logits: expected K tensors of one shape (batch, classes) or (batch, tasks, classes), "
            f"got {shapes}"
        )
    if present is not None:
        if len(present) != len(expert_logits):
            raise ValueError(
                f"presence masks: expected {len(expert_logits)} (one per expert), got {len(present)}"
            )
        for k, p in enumerate(present):
            if p.dtype != torch.bool or tuple(p.shape) != shape[:1]:
                raise ValueError(
                    f"presence mask {k}: expected a bool tensor of shape ({shape[0]},), "
                    f"got {p.dtype} {tuple(p.shape)}"
                )
    if log_prior is not None and tuple(log_prior.shape) != shape[1:]:
        raise ValueError(f"log_prior: expected shape {shape[1:]}, got {tuple(log_prior.shape)}")
