"""Late fusion: one encoder per modality, features concatenated, one head on top."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from i2m2.models.expert import Batch, Expert, feature_concat
from i2m2.models.fusion.inputs import float_input, weight_dtype


class LateFusion(Expert):
    """``head(concat(encoder_m(x_m) for m))``.

    Args:
        encoders: one feature encoder per modality; the keys are the modalities this expert reads.
        head: maps the concatenated features to logits.
    """

    def __init__(self, encoders: Mapping[str, nn.Module], head: nn.Module) -> None:
        super().__init__(tuple(encoders))
        self.encoders = nn.ModuleDict(encoders)
        self.head = head

    def forward(self, batch: Batch) -> Tensor:
        dtype = weight_dtype(self)
        features = [self.encoders[m](float_input(batch, m, dtype)) for m in self.modalities]
        return self.head(feature_concat(features))
