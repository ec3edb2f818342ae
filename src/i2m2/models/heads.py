"""Heads on top of pretrained features: an MLP for one modality, and the experts built from them.

``MLPHead`` is ``Linear -> LayerNorm -> GELU -> Linear`` (the VQA classifier of FIBER/METER). With
cached backbone features (:mod:`i2m2.data.feature_cache`) each modality is a ``(batch, D)`` vector, so
an intra-modality expert is ``UnimodalExpert(m, MLPHead(D, C))`` and the inter-modality expert is early
fusion of the features, ``EarlyFusion(modalities, MLPHead(sum D, C), flatten=True)``. A modality of
shape ``(batch, 2, D)`` (the two images of an NLVR2 pair) is flattened, which joins the pair's features
in a fixed left/right order.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from i2m2.models.expert import Expert, UnimodalExpert
from i2m2.models.fusion.early import EarlyFusion


class MLPHead(nn.Sequential):
    """``Flatten -> Linear(in, hidden) -> LayerNorm -> GELU -> Dropout -> Linear(hidden, C)``.

    Args:
        in_features: input features (inputs are flattened from the second axis on).
        num_classes: output logits.
        hidden: hidden width (default ``2 * in_features``, as in METER/FIBER's VQA head).
        dropout: dropout before the last layer.
    """

    def __init__(self, in_features: int, num_classes: int, hidden: int | None = None, dropout: float = 0.0):
        hidden = hidden or 2 * in_features
        super().__init__(
            nn.Flatten(1),
            nn.Linear(in_features, hidden),
            nn.LayerNorm(hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        self.in_features = in_features
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:  # a typed override, for mypy
        return super().forward(x)


def feature_experts(
    feature_sizes: Mapping[str, int], num_classes: int, hidden: int | None = None, dropout: float = 0.0
) -> tuple[dict[str, Expert], Expert]:
    """One :class:`MLPHead` expert per modality, and the early-fusion inter expert over all of them.

    Args:
        feature_sizes: modality -> flattened feature size (e.g. ``2 * D`` for an image pair).
        num_classes: classes C.
        hidden: hidden width of every head (default twice its input).
        dropout: dropout of every head.

    Returns:
        ``(unimodal experts keyed by modality, inter expert)``: pass them as ``I2M2(experts, inter)``.
    """
    unimodal: dict[str, Expert] = {
        m: UnimodalExpert(m, MLPHead(d, num_classes, hidden, dropout)) for m, d in feature_sizes.items()
    }
    inter = EarlyFusion(
        tuple(feature_sizes), MLPHead(sum(feature_sizes.values()), num_classes, hidden, dropout), flatten=True
    )
    return unimodal, inter
