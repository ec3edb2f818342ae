"""The paper's Section 5 proposal in full: a product of subset-conditionals from one null-token network.

:class:`~i2m2.models.fusion.null_token.NullTokenFusion` gives one conditional, ``p(y | x_present)``. Section 5
proposes more: per example, a random set of subset-conditionals ``p(y | x_S)`` of that one network,
combined as a product (a sum of log-probabilities). This is what an expert per subset (``all_subsets``) gives,
with the parameters of one network: the encoders run once per example and only the head runs once per subset.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from i2m2.models.expert import Batch, Expert
from i2m2.models.fusion.null_token import NullTokenFusion
from i2m2.models.subsets import subset_masks


class SubsetProductFusion(Expert):
    """``log_softmax(sum_S log_softmax(network(x_S)))`` over subsets ``S`` of the present modalities.

    Training (``self.training``): per example, ``k`` subsets drawn independently from its present modalities,
    each of a size drawn uniformly from ``min_modalities .. n`` (n: how many it has; the network's
    ``min_modalities``), then a uniformly random subset of that size. Draws use torch's generator: seed it
    with ``torch.manual_seed`` for a repeatable run.

    Evaluation: the same subsets for every example, fixed at construction. ``eval_subsets=None``: every
    subset of at least ``min_modalities`` modalities (2^M - 1 with the default), or, when there are more than
    ``max_eval_subsets``, a fixed sample (seed ``seed``) of that many; an int n: a fixed sample of n. A sample
    always holds the full set. Per example only the subsets of its present modalities count; one that has
    none of them (fewer present than ``min_modalities``) gets ``p(y | x_present)``.

    The product is not tempered: it sums k log-probabilities in training and up to 2^M - 1 in evaluation,
    so test-time probabilities are sharper than training ones (argmax, hence accuracy, is unaffected). Each
    conditional carries the prior; as in the paper's I2M2 product, it is not divided out.

    Args:
        network: the one null-token network that gives every conditional (its own random-subset training,
            ``subset_prob``, is not used here: the subsets are this module's).
        k: subsets per example in training.
        eval_subsets: ``None`` for every subset up to ``max_eval_subsets``, or the size of a fixed sample.
        max_eval_subsets: the cap on the subsets evaluated.
        seed: seeds the fixed evaluation sample.
    """

    handles_missing = True

    def __init__(
        self,
        network: NullTokenFusion,
        k: int = 4,
        eval_subsets: int | None = None,
        max_eval_subsets: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(network.modalities)
        if k < 1:
            raise ValueError(f"k (subsets per training example) must be at least 1, got {k}")
        if eval_subsets is not None and eval_subsets < 1:
            raise ValueError(f"eval_subsets must be None (all) or at least 1, got {eval_subsets}")
        if max_eval_subsets < 1:
            raise ValueError(f"max_eval_subsets must be at least 1, got {max_eval_subsets}")
        self.network = network
        self.k = k
        self.eval_subsets = eval_subsets
        self.max_eval_subsets = max_eval_subsets
        self.seed = seed
        masks = torch.tensor(subset_masks(len(self.modalities), network.min_modalities))  # (S, M), full last
        wanted = min(len(masks), eval_subsets or len(masks), max_eval_subsets)
        if wanted < len(masks):
            generator = torch.Generator().manual_seed(seed)
            picked = torch.randperm(len(masks) - 1, generator=generator)[: wanted - 1].sort().values
            masks = torch.cat([masks[picked], masks[-1:]])
        self.eval_masks: Tensor
        self.register_buffer("eval_masks", masks, persistent=False)

    @property
    def min_modalities(self) -> int:
        return self.network.min_modalities

    def forward(self, batch: Batch, present: Mapping[str, Tensor] | None = None) -> Tensor:
        rows = self.network.presence(batch, present)  # (B, M)
        subsets = self.sample_subsets(rows) if self.training else self.evaluation_subsets(rows)  # (S, B, M)
        count, size, modalities = subsets.shape
        features = self.network.features(batch, rows)
        logits = self.network.conditional(features, subsets.reshape(count * size, modalities))
        log_probs = F.log_softmax(logits.view(count, size, *logits.shape[1:]), dim=-1)
        used = subsets.any(-1).view(count, size, *[1] * (log_probs.dim() - 2))
        return F.log_softmax(torch.where(used, log_probs, torch.zeros_like(log_probs)).sum(0), dim=-1)

    def sample_subsets(self, rows: Tensor) -> Tensor:
        """``(k, B, M)``: k random subsets of each example's present modalities (see the class docstring);
        all False for an example with none present."""
        size, count = rows.shape
        available = rows.sum(1)  # (B,)
        low = available.clamp(max=self.min_modalities)
        span = (available - low + 1).clamp(min=1)  # sizes low .. available
        draws = torch.rand(self.k, size, device=rows.device)
        keep = low + (draws * span).long().clamp(max=span - 1)  # (k, B)
        scores = torch.rand(self.k, size, count, device=rows.device).masked_fill(~rows, 2.0)
        order = scores.argsort(dim=2).argsort(dim=2)  # a random rank among the present, absent ones last
        return rows.unsqueeze(0) & (order < keep.unsqueeze(2))

    def evaluation_subsets(self, rows: Tensor) -> Tensor:
        """``(S + 1, B, M)``: the fixed subsets where they lie within an example's present modalities (all
        False elsewhere), and last its present set for an example that none of them fits."""
        masks = self.eval_masks.to(rows.device)
        fits = ~(masks.unsqueeze(1) & ~rows.unsqueeze(0)).any(-1)  # (S, B): subset within the present ones
        subsets = masks.unsqueeze(1) & fits.unsqueeze(2)
        fallback = rows & ~fits.any(0, keepdim=True).T  # (B, M)
        return torch.cat([subsets, fallback.unsqueeze(0)])
