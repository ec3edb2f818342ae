"""Tensor fusion (Zadeh et al. 2017): the outer product of the [1; z_m] features of all modalities."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from i2m2.models.expert import Batch, Expert


def with_constant_one(z: Tensor) -> Tensor:
    """Append a 1 to each feature vector, so that the product keeps every lower-order term."""
    return torch.cat([z.flatten(1), z.new_ones(z.shape[0], 1)], dim=1)


class TensorFusion(Expert):
    """``head(vec(⊗_m [z_m; 1]))``: all multiplicative interactions between the modalities' features.

    The head's input size is ``prod(d_m + 1)``; see :func:`tensor_fusion_dim`.

    Args:
        encoders: one feature encoder per modality.
        head: maps the flattened outer product to logits.
    """

    def __init__(self, encoders: Mapping[str, nn.Module], head: nn.Module) -> None:
        super().__init__(tuple(encoders))
        self.encoders = nn.ModuleDict(encoders)
        self.head = head

    def forward(self, batch: Batch) -> Tensor:
        product: Tensor | None = None
        for m in self.modalities:
            z = with_constant_one(self.encoders[m](batch[m]))
            product = z if product is None else (product.unsqueeze(2) * z.unsqueeze(1)).flatten(1)
        assert product is not None
        return self.head(product)


def tensor_fusion_dim(feature_dims: Mapping[str, int]) -> int:
    """Size of the flattened outer product for the given per-modality feature sizes."""
    size = 1
    for d in feature_dims.values():
        size *= d + 1
    return size
