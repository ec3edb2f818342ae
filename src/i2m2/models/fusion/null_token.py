"""One inter-modality network for every subset of the modalities (the paper's Section 5 proposal).

With M modalities, one inter expert per subset (``inter_subsets(..., all_subsets=True)``) costs 2^M - M - 1
networks. Here one network reads all M: each modality's encoder gives features, an absent modality's
features are replaced by a learned null token of that modality, and the features are concatenated into one
head. Trained on random subsets of the modalities, the one network gives ``p(y | x_S)`` for every subset S,
and its size grows linearly in M (M encoders, M null tokens, a head over M feature vectors).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from i2m2.models.expert import Batch, Expert
from i2m2.models.fusion.inputs import float_input, weight_dtype


class NullTokenFusion(Expert):
    """``head(concat_m(encoder_m(x_m) if m is present else null_m))``.

    Absent modalities, per example: a modality missing from the batch is absent everywhere; ``present``
    (modality -> bool ``(batch,)``, as :class:`~i2m2.models.i2m2.I2M2` takes it) marks absent rows of the
    others. Absent rows never reach an encoder (a placeholder there, NaN or zeros, cannot affect batch
    statistics or gradients). ``handles_missing = True`` tells the product of experts that this expert takes
    ``present`` and gives a conditional wherever at least one of its modalities is present.

    Training on random subsets (only in ``self.training``): with probability ``subset_prob`` an example
    keeps a uniformly random subset of its present modalities, of a size drawn uniformly from
    ``min_modalities .. n - 1`` (n: how many it has); otherwise it keeps all. Subsets of every size are thus
    trained, and the full set, the one used most, gets ``1 - subset_prob`` of the examples. Examples with
    at most ``min_modalities`` present keep them all. The default ``min_modalities = 1`` trains the
    single-modality conditionals too; use 2 when unimodal experts cover those. In eval mode nothing is
    dropped.

    Args:
        encoders: one feature encoder per modality; the keys are the modalities this expert reads.
        feature_dims: output size of each encoder (the size of its null token).
        head: maps the concatenated features (``sum(feature_dims)``) to logits.
        subset_prob: probability that a training example is reduced to a random subset.
        min_modalities: the smallest subset trained.
    """

    handles_missing = True

    def __init__(
        self,
        encoders: Mapping[str, nn.Module],
        feature_dims: Mapping[str, int],
        head: nn.Module,
        subset_prob: float = 0.5,
        min_modalities: int = 1,
    ) -> None:
        super().__init__(tuple(encoders))
        missing = set(encoders) - set(feature_dims)
        if missing:
            raise ValueError(f"feature_dims lacks the modalities {sorted(missing)}")
        if not 0.0 <= subset_prob <= 1.0:
            raise ValueError(f"subset_prob must be in [0, 1], got {subset_prob}")
        if not 1 <= min_modalities <= len(encoders):
            raise ValueError(f"min_modalities must be in 1..{len(encoders)}, got {min_modalities}")
        self.encoders = nn.ModuleDict(encoders)
        self.null_tokens = nn.ParameterDict({m: nn.Parameter(torch.zeros(feature_dims[m])) for m in encoders})
        self.head = head
        self.subset_prob = subset_prob
        self.min_modalities = min_modalities

    def forward(self, batch: Batch, present: Mapping[str, Tensor] | None = None) -> Tensor:
        rows = self.presence(batch, present)
        if self.training:
            rows = self.random_subsets(rows)
        return self.head(torch.cat(self.features(batch, rows), dim=1))

    def features(self, batch: Batch, rows: Tensor) -> list[Tensor]:
        """Per modality ``(batch, feature_dim)``: its encoder's features where ``rows`` (``(batch, M)``) is
        True, its null token elsewhere; each encoder runs once, on its present rows only."""
        dtype = weight_dtype(self)
        return [self._features(batch, m, rows[:, i], dtype) for i, m in enumerate(self.modalities)]

    def conditional(self, features: list[Tensor], keep: Tensor) -> Tensor:
        """Logits of ``p(y | x_S)`` with ``S = keep`` (bool ``(n, M)``): the head over ``features`` with the
        null token wherever ``keep`` is False. ``features`` come from :meth:`features` (``n`` may be a
        multiple of their batch: they are repeated to match), so many subsets cost one encoder pass."""
        repeats = keep.shape[0] // features[0].shape[0]
        parts = []
        for i, (m, f) in enumerate(zip(self.modalities, features, strict=True)):
            f = f.repeat(repeats, 1) if repeats > 1 else f
            null = self.null_tokens[m].unsqueeze(0).expand_as(f)
            parts.append(torch.where(keep[:, i : i + 1], f, null))
        return self.head(torch.cat(parts, dim=1))

    def presence(self, batch: Batch, present: Mapping[str, Tensor] | None = None) -> Tensor:
        """Boolean ``(batch, M)``: which of this expert's modalities each example has."""
        given = [m for m in self.modalities if m in batch]
        if not given:
            raise ValueError(
                f"none of the modalities {list(self.modalities)} is in the batch {sorted(batch)}"
            )
        reference = batch[given[0]]
        size, device = reference.shape[0], reference.device
        columns = []
        for m in self.modalities:
            if m not in batch:
                columns.append(torch.zeros(size, dtype=torch.bool, device=device))
            elif present is None or m not in present:
                columns.append(torch.ones(size, dtype=torch.bool, device=device))
            else:
                mask = present[m]
                if not isinstance(mask, Tensor) or mask.shape != (size,) or mask.dtype != torch.bool:
                    got = (tuple(mask.shape), mask.dtype) if isinstance(mask, Tensor) else type(mask).__name__
                    raise ValueError(
                        f"presence mask of '{m}': expected a bool tensor of shape ({size},), got {got}"
                    )
                columns.append(mask.to(device))
        return torch.stack(columns, dim=1)

    def random_subsets(self, rows: Tensor) -> Tensor:
        """Keep a random subset of each example's present modalities (see the class docstring)."""
        size, count = rows.shape
        available = rows.sum(1)
        reducible = available > self.min_modalities
        reduce = reducible & (torch.rand(size, device=rows.device) < self.subset_prob)
        # a size in min_modalities .. available - 1, uniformly
        span = (available - self.min_modalities).clamp(min=1)
        keep = self.min_modalities + (torch.rand(size, device=rows.device) * span).long().clamp(max=span - 1)
        keep = torch.where(reduce, keep, available)
        # rank the present modalities in a random order (absent ones last) and keep the first `keep`
        scores = torch.rand(size, count, device=rows.device).masked_fill(~rows, 2.0)
        order = scores.argsort(dim=1).argsort(dim=1)
        return rows & (order < keep.unsqueeze(1))

    def _features(self, batch: Batch, modality: str, rows: Tensor, dtype: torch.dtype | None) -> Tensor:
        """The encoder's features where ``rows`` is True, the modality's null token elsewhere."""
        null = self.null_tokens[modality].unsqueeze(0).expand(rows.shape[0], -1)
        if modality not in batch or not bool(rows.any()):
            return null
        x = float_input(batch, modality, dtype)
        if bool(rows.all()):
            return self.encoders[modality](x).flatten(1)
        index = rows.nonzero().squeeze(1)
        encoded = self.encoders[modality](x[index]).flatten(1)
        scattered = encoded.new_zeros(rows.shape[0], encoded.shape[1]).index_copy(0, index, encoded)
        return torch.where(rows.unsqueeze(1), scattered, null)
