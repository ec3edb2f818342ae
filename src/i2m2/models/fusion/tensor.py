"""Tensor fusion (Zadeh et al. 2017): the outer product of the [1; z_m] features of all modalities.

Two forms, chosen by ``form`` (:data:`FUSION_FORMS`):

* ``published`` (default): the formula of Zadeh et al. and of MultiBench's ``TensorFusion``, on the
  encoders' raw outputs. The paper's experiments use it.
* ``normalized``: each modality's features scaled to unit root mean square per example first
  (:func:`unit_rms`; no learned scale, which the head would absorb). For many modalities: each entry of the
  outer product is a product of up to M features, so with raw outputs of a few tenths the high-order
  entries, the very interactions this fusion exists for, shrink geometrically with M and the head sees a
  vector dominated by the low-order terms. With unit-RMS features ``[z_m; 1]`` has mean square exactly 1,
  and so does the outer product, per example and for every M. Unlike a layer norm, this removes only each
  feature vector's length, not its mean, which matters for the few features this fusion can afford (a
  layer norm of 2 features leaves one sign bit; in our runs it also trained less reliably).

Size. The head's input has ``prod(d_m + 1)`` entries: with six modalities and 8 features each that is
531,441, and a 64-unit head layer holds 34 million weights. The registry's builder warns above a budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from i2m2.models.expert import Batch, Expert
from i2m2.models.fusion.inputs import float_input, weight_dtype

FusionForm = Literal["published", "normalized"]
FUSION_FORMS: tuple[str, ...] = get_args(FusionForm)


def check_form(form: str) -> FusionForm:
    """``form`` if it names a form of the tensor fusions, else one ValueError naming the choices."""
    if form not in FUSION_FORMS:
        raise ValueError(f"unknown fusion form {form!r}; expected one of {list(FUSION_FORMS)}")
    return form  # type: ignore[return-value]


def with_constant_one(z: Tensor) -> Tensor:
    """Append a 1 to each feature vector, so that the product keeps every lower-order term."""
    return torch.cat([z.flatten(1), z.new_ones(z.shape[0], 1)], dim=1)


def unit_rms(z: Tensor) -> Tensor:
    """Scale each example's features (flattened) to a root mean square of 1 (an RMS norm without weights).

    A single feature is left as is: scaling it would leave only its sign.
    """
    z = z.flatten(1)
    return F.rms_norm(z, z.shape[1:], eps=1e-6) if z.shape[1] > 1 else z


class TensorFusion(Expert):
    """``head(vec(⊗_m [z_m; 1]))``, ``z_m = encoder_m(x_m)``: all multiplicative interactions.

    The head's input size is ``prod(d_m + 1)``; see :func:`tensor_fusion_dim`.

    Args:
        encoders: one feature encoder per modality.
        head: maps the flattened outer product to logits.
        form: ``published`` (Zadeh et al.'s formula on the encoders' outputs) or ``normalized`` (each
            modality's features scaled to unit RMS first, for many modalities; see the module docstring).
    """

    def __init__(
        self, encoders: Mapping[str, nn.Module], head: nn.Module, form: FusionForm = "published"
    ) -> None:
        super().__init__(tuple(encoders))
        self.encoders = nn.ModuleDict(encoders)
        self.head = head
        self.form = check_form(form)

    def forward(self, batch: Batch) -> Tensor:
        dtype = weight_dtype(self)
        product: Tensor | None = None
        for m in self.modalities:
            z = self.encoders[m](float_input(batch, m, dtype))
            z = with_constant_one(unit_rms(z) if self.form == "normalized" else z)
            product = z if product is None else (product.unsqueeze(2) * z.unsqueeze(1)).flatten(1)
        assert product is not None
        return self.head(product)


def tensor_fusion_dim(feature_dims: Mapping[str, int]) -> int:
    """Size of the flattened outer product for the given per-modality feature sizes."""
    size = 1
    for d in feature_dims.values():
        size *= d + 1
    return size
