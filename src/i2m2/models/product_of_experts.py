"""Eq. (3) of the paper: p(y | x, x') ∝ p(y) q_x(y|x) q_x'(y|x') q_xx'(y|x, x').

Each expert's logits become log-probabilities; their sum, renormalized, is the product of experts.
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
    """Combine K experts into one normalized ``log p(y | x)`` of shape ``(batch, classes)``.

    Args:
        expert_logits: K tensors ``(batch, classes)``.
        present: optional K boolean tensors ``(batch,)``; an expert contributes to an example only where
            it is True (its modalities are present). An example with no expert gets the prior (or uniform).
        log_prior: optional ``log p(y)`` ``(classes,)``. Each discriminative expert already contains the
            prior, so the product carries it K times; this subtracts ``(K - 1) log p(y)`` per example,
            with K the number of experts present for that example.
    """
    log_probs = torch.stack([F.log_softmax(z, dim=-1) for z in expert_logits])  # (K, B, C)
    if present is None:
        mask = torch.ones(log_probs.shape[:2], dtype=torch.bool, device=log_probs.device)
    else:
        mask = torch.stack(list(present)).to(log_probs.device)
    total = torch.where(mask.unsqueeze(-1), log_probs, torch.zeros_like(log_probs)).sum(0)
    if log_prior is not None:
        experts_used = mask.sum(0, keepdim=True).T.to(log_probs.dtype)  # (B, 1)
        total = total - (experts_used - 1) * log_prior.to(total)
    return F.log_softmax(total, dim=-1)
