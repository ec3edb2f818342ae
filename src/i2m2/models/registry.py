"""A registry of inter-modality fusions for vector (or flattenable) modalities, selectable by name.

Each entry builds an inter expert from per-modality input sizes; tests sweep every entry, like timm's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from i2m2.models.expert import Expert
from i2m2.models.fusion import EarlyFusion, LateFusion, LowRankTensorFusion, TensorFusion
from i2m2.models.fusion.tensor import tensor_fusion_dim
from i2m2.models.mlp import MLP

FusionBuilder = Callable[..., Expert]
FUSIONS: dict[str, FusionBuilder] = {}


def register_fusion(name: str) -> Callable[[FusionBuilder], FusionBuilder]:
    """Decorator adding a fusion builder to :data:`FUSIONS` under ``name``."""

    def add(builder: FusionBuilder) -> FusionBuilder:
        FUSIONS[name] = builder
        return builder

    return add


def create_fusion(name: str, input_dims: Mapping[str, int], num_classes: int, hidden: int = 64) -> Expert:
    """Build the fusion ``name`` over modalities with the given flattened input sizes."""
    if name not in FUSIONS:
        raise ValueError(f"unknown fusion '{name}'; expected one of {sorted(FUSIONS)}")
    return FUSIONS[name](input_dims=input_dims, num_classes=num_classes, hidden=hidden)


def _encoders(input_dims: Mapping[str, int], hidden: int) -> dict[str, MLP]:
    return {m: MLP(d, [hidden], hidden) for m, d in input_dims.items()}


@register_fusion("early")
def early_fusion(input_dims: Mapping[str, int], num_classes: int, hidden: int = 64) -> Expert:
    """Flattened inputs concatenated, then one MLP."""
    network = MLP(sum(input_dims.values()), [hidden, hidden], num_classes)
    return EarlyFusion(tuple(input_dims), network, flatten=True)


@register_fusion("late")
def late_fusion(input_dims: Mapping[str, int], num_classes: int, hidden: int = 64) -> Expert:
    """One MLP encoder per modality, features concatenated, an MLP head."""
    head = MLP(hidden * len(input_dims), [hidden], num_classes)
    return LateFusion(_encoders(input_dims, hidden), head)


@register_fusion("lrtf")
def low_rank_tensor_fusion(
    input_dims: Mapping[str, int], num_classes: int, hidden: int = 64, rank: int = 8
) -> Expert:
    """One MLP encoder per modality, rank-``rank`` tensor fusion, an MLP head."""
    encoders = _encoders(input_dims, hidden)
    dims = dict.fromkeys(input_dims, hidden)
    return LowRankTensorFusion(encoders, dims, rank, hidden, MLP(hidden, [], num_classes))


@register_fusion("tensor")
def tensor_fusion(input_dims: Mapping[str, int], num_classes: int, hidden: int = 64) -> Expert:
    """Small encoders (the outer product grows as the product of their sizes), then an MLP head."""
    feature = max(4, hidden // 8)
    encoders = {m: MLP(d, [hidden], feature) for m, d in input_dims.items()}
    head = MLP(tensor_fusion_dim(dict.fromkeys(input_dims, feature)), [hidden], num_classes)
    return TensorFusion(encoders, head)
