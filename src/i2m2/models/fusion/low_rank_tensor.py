"""Low-rank tensor fusion (Liu et al. 2018): tensor fusion with a rank-r factorized weight tensor.

Every factor is a registered ``nn.Parameter`` so it moves with ``.to(device)``, is seen by the optimizer and
is saved in the state_dict. (MultiBench's version keeps them in a Python list and never trains them.)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from i2m2.models.expert import Batch, Expert
from i2m2.models.fusion.tensor import with_constant_one


class LowRankTensorFusion(Expert):
    """``head(sum_r w_r * prod_m (W_m^(r) [z_m; 1]) + b)``.

    Args:
        encoders: one feature encoder per modality.
        feature_dims: output size of each encoder.
        rank: rank r of the factorization.
        output_dim: size of the fused representation.
        head: maps the fused representation to logits.
    """

    def __init__(
        self,
        encoders: Mapping[str, nn.Module],
        feature_dims: Mapping[str, int],
        rank: int,
        output_dim: int,
        head: nn.Module,
    ) -> None:
        super().__init__(tuple(encoders))
        if rank < 1 or output_dim < 1:
            raise ValueError(
                f"low-rank tensor fusion needs rank >= 1 and output_dim >= 1, got {rank}, {output_dim}"
            )
        missing = set(encoders) - set(feature_dims)
        if missing:
            raise ValueError(f"feature_dims lacks the modalities {sorted(missing)}")
        self.encoders = nn.ModuleDict(encoders)
        self.factors = nn.ParameterDict(
            {m: nn.Parameter(torch.empty(rank, feature_dims[m] + 1, output_dim)) for m in self.modalities}
        )
        self.rank_weights = nn.Parameter(torch.empty(1, rank))
        self.bias = nn.Parameter(torch.zeros(1, output_dim))
        self.head = head
        for factor in self.factors.values():
            nn.init.xavier_normal_(factor)
        nn.init.xavier_normal_(self.rank_weights)

    def forward(self, batch: Batch) -> Tensor:
        fused: Tensor | None = None
        for m in self.modalities:
            z = with_constant_one(self.encoders[m](batch[m]))  # (B, d_m + 1)
            projected = torch.einsum("bd,rdo->rbo", z, self.factors[m])  # (r, B, out)
            fused = projected if fused is None else fused * projected
        assert fused is not None
        combined = torch.einsum("r,rbo->bo", self.rank_weights[0], fused) + self.bias
        return self.head(combined)
