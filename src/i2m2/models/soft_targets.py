"""Cross-entropy against soft targets, for VQA where several answers earn partial credit.

VQA training targets give each answer ``min(#annotators who gave it / 3, 1)`` (see
:func:`i2m2.data.vqa_vs.soft_targets`). These scores do not sum to one, so they are normalized into a
distribution before the cross-entropy; the loss is then ``-(t * log p).sum(-1)`` on the model's
normalized log-probabilities (the product of experts' output), which is minimized by ``p = t``.
The authors' code instead applied binary cross-entropy to those log-probabilities, treating
``log p <= 0`` as logits of independent labels: a mismatch with the product's normalized output.
"""

from __future__ import annotations

from torch import Tensor


def normalize_targets(targets: Tensor) -> Tensor:
    """Rows scaled to sum to one; an all-zero row (no answer in the vocabulary) stays zero."""
    total = targets.sum(dim=-1, keepdim=True)
    return targets / total.clamp(min=1e-12)


def soft_target_cross_entropy(log_probs: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
    """``-(normalize_targets(targets) * log_probs).sum(-1)``, averaged (or summed) over the batch.

    Args:
        log_probs: ``(batch, C)`` normalized log-probabilities (``logsumexp`` over C is 0).
        targets: ``(batch, C)`` non-negative scores, e.g. VQA soft scores; normalized here. Rows with no
            target (all zero) contribute zero loss but still count in the mean.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """
    if log_probs.shape != targets.shape:
        raise ValueError(f"log_probs {tuple(log_probs.shape)} and targets {tuple(targets.shape)} differ")
    if (targets < 0).any():
        raise ValueError("soft targets must be non-negative")
    losses = -(normalize_targets(targets) * log_probs).sum(dim=-1)
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"unknown reduction '{reduction}'; expected 'mean', 'sum' or 'none'")
