"""Low-rank tensor fusion (Liu et al. 2018): tensor fusion with a rank-r factorized weight tensor.

Every factor is a registered ``nn.Parameter`` so it moves with ``.to(device)``, is seen by the optimizer and
is saved in the state_dict. (MultiBench's version keeps them in a Python list and never trains them.)

Two forms, chosen by ``form`` (:data:`~i2m2.models.fusion.tensor.FUSION_FORMS`):

* ``published`` (default; the paper's experiments use it): Liu et al.'s formula on the encoders' raw
  outputs, initialised as their reference code (Justin1904/Low-rank-Multimodal-Fusion) and MultiBench's
  ``LowRankTensorFusion`` (which the I2M2 authors' code uses) initialise it: Xavier-normal factors
  ``(r, d_m + 1, out)``, whose fans torch computes as ``(d_m + 1) * out`` in and ``r * out`` out, so
  ``std = sqrt(2 / ((d_m + 1 + r) * out))``; Xavier-normal rank weights ``(1, r)``,
  ``std = sqrt(2 / (r + 1))``; a zero bias. (The reference code puts the constant 1 first, ``[1; z_m]``;
  here it is last, which permutes a factor's rows and changes no distribution.)
* ``normalized``: for many modalities. The fused vector is a product of M projections, one per modality.
  With the published initialisation each projection has a standard deviation of a few hundredths, so the
  product shrinks by that factor per modality: 2e-3 at M=2, 1e-8 at M=6, and the gradient of every factor
  (the product of the other M-1 projections) vanishes with it; with six modalities the model stays at
  chance. Here each modality's features are scaled to unit root mean square (:func:`unit_rms`, whatever
  scale the encoder gives) and every factor is drawn with variance ``1 / (d_m + 1)``, so each projection
  ``f_m = W_m [z_m; 1]`` has mean 0 and variance ``|[z_m; 1]|^2 / (d_m + 1) = 1``. For independent zero-mean
  terms ``E[(prod_m f_m)^2] = prod_m E[f_m^2] = 1``: the fused vector, and the gradient of each factor,
  keep unit variance for every M. (Starting the projections near 1 instead, ``1 + e_m``, also keeps the
  scale but starts the model near additive, and in our runs it learned six-way interactions more slowly.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from i2m2.models.expert import Batch, Expert
from i2m2.models.fusion.inputs import float_input, weight_dtype
from i2m2.models.fusion.tensor import FusionForm, check_form, unit_rms, with_constant_one


class LowRankTensorFusion(Expert):
    """``head(sum_r w_r * prod_m (W_m^(r) [z_m; 1]) + b)``, ``z_m = encoder_m(x_m)`` (``unit_rms`` of it in
    the normalized form).

    Args:
        encoders: one feature encoder per modality.
        feature_dims: output size of each encoder.
        rank: rank r of the factorization.
        output_dim: size of the fused representation.
        head: maps the fused representation to logits.
        form: ``published`` (Liu et al.'s formula and initialisation) or ``normalized`` (unit-RMS features and
            unit-variance factors, for many modalities); see the module docstring.
    """

    def __init__(
        self,
        encoders: Mapping[str, nn.Module],
        feature_dims: Mapping[str, int],
        rank: int,
        output_dim: int,
        head: nn.Module,
        form: FusionForm = "published",
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
        self.form = check_form(form)
        self.factors = nn.ParameterDict(
            {m: nn.Parameter(torch.empty(rank, feature_dims[m] + 1, output_dim)) for m in self.modalities}
        )
        self.rank_weights = nn.Parameter(torch.empty(1, rank))
        self.bias = nn.Parameter(torch.zeros(1, output_dim))
        self.head = head
        self.reset_factors()

    def reset_factors(self) -> None:
        """The form's initialisation of the factors and rank weights (see the module docstring); zero bias."""
        with torch.no_grad():
            if self.form == "published":
                for factor in self.factors.values():
                    nn.init.xavier_normal_(factor)
                nn.init.xavier_normal_(self.rank_weights)
            else:
                for factor in self.factors.values():
                    nn.init.normal_(factor, std=1.0 / math.sqrt(factor.shape[1]))
                nn.init.normal_(self.rank_weights, std=1.0 / math.sqrt(self.rank_weights.shape[1]))
            self.bias.zero_()

    def forward(self, batch: Batch) -> Tensor:
        dtype = weight_dtype(self)
        fused: Tensor | None = None
        for m in self.modalities:
            z = self.encoders[m](float_input(batch, m, dtype)).flatten(1)
            z = unit_rms(z) if self.form == "normalized" else z
            projected = torch.einsum("bd,rdo->rbo", with_constant_one(z), self.factors[m])  # (r, B, out)
            fused = projected if fused is None else fused * projected
        assert fused is not None
        combined = torch.einsum("r,rbo->bo", self.rank_weights[0], fused) + self.bias
        return self.head(combined)
