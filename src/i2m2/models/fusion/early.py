"""Early fusion: the modalities are joined at the input and one network reads them together."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from i2m2.models.expert import Batch, Expert
from i2m2.models.fusion.inputs import float_input, weight_dtype


class EarlyFusion(Expert):
    """Concatenate the inputs of all modalities, then apply one network.

    Args:
        modalities: the modalities to join, in this order.
        network: maps the joined input to logits.
        flatten: flatten each input to ``(batch, features)`` before joining (vectors, mixed shapes);
            otherwise join along ``dim`` (e.g. magnitude and phase images as two channels).
        dim: the axis to join along when not flattening.
    """

    def __init__(self, modalities: Sequence[str], network: nn.Module, flatten: bool = False, dim: int = 1):
        super().__init__(modalities)
        self.network = network
        self.flatten = flatten
        self.dim = dim

    def forward(self, batch: Batch) -> Tensor:
        dtype = weight_dtype(self)
        inputs = [float_input(batch, m, dtype) for m in self.modalities]
        if self.flatten:
            return self.network(torch.cat([x.flatten(1) for x in inputs], dim=1))
        shapes = {m: tuple(x.shape) for m, x in zip(self.modalities, inputs, strict=True)}
        ranks = {len(s) for s in shapes.values()}
        dim = self.dim % max(ranks)  # a negative axis counts from the end
        reference = [s[:dim] + s[dim + 1 :] for s in shapes.values()]
        if len(ranks) > 1 or any(r != reference[0] for r in reference):
            raise ValueError(
                f"early fusion joins along axis {self.dim}, so every other axis must match; "
                f"got shapes {shapes}"
            )
        return self.network(torch.cat(inputs, dim=self.dim))
