"""A registry of inter-modality fusions for vector (or flattenable) modalities, selectable by name.

Each entry builds an inter expert from per-modality input sizes and its own keyword options (rank, feature
size, ...); :func:`create_fusion` passes the options through and names the valid ones when one is unknown.
Tests sweep every entry, like timm's.

``lrtf`` and ``tensor`` are the published forms (Liu et al. 2018, Zadeh et al. 2017); ``lrtf-normalized``
and ``tensor-normalized`` are their normalized forms, whose scale does not shrink with the number of
modalities (see :mod:`i2m2.models.fusion.low_rank_tensor`): use them from about four modalities on.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from i2m2.models.expert import Expert
from i2m2.models.fusion import (
    EarlyFusion,
    LateFusion,
    LowRankTensorFusion,
    NullTokenFusion,
    SubsetProductFusion,
    TensorFusion,
)
from i2m2.models.fusion.tensor import FusionForm, tensor_fusion_dim
from i2m2.models.mlp import MLP
from i2m2.models.validation import check_sizes

FusionBuilder = Callable[..., Expert]
FUSIONS: dict[str, FusionBuilder] = {}
# Above this many parameters the tensor fusion warns (its head grows as prod(feature_dim + 1)).
TENSOR_FUSION_PARAMETER_BUDGET = 5_000_000
# Above this many times the budget it refuses, before allocating (six modalities: billions of weights).
TENSOR_FUSION_REFUSED_ABOVE = 50


def register_fusion(name: str) -> Callable[[FusionBuilder], FusionBuilder]:
    """Decorator adding a fusion builder ``(input_dims, num_classes, **options) -> Expert`` under ``name``."""

    def add(builder: FusionBuilder) -> FusionBuilder:
        FUSIONS[name] = builder
        return builder

    return add


def fusion_options(name: str) -> dict[str, Any]:
    """The options of fusion ``name`` with their defaults (``inspect.Parameter.empty`` if required)."""
    parameters = inspect.signature(_builder(name)).parameters
    return {p.name: p.default for p in parameters.values() if p.name not in ("input_dims", "num_classes")}


def create_fusion(name: str, input_dims: Mapping[str, int], num_classes: int, **options: Any) -> Expert:
    """Build the fusion ``name`` over modalities with the given flattened input sizes.

    Args:
        name: a key of :data:`FUSIONS`.
        input_dims: modality -> flattened input size.
        num_classes: the number of classes C.
        options: the fusion's own options, e.g. ``hidden=32`` for every fusion, ``rank=4`` for ``lrtf``,
            ``feature_dim=3`` for ``tensor``; :func:`fusion_options` lists them.
    """
    builder = _builder(name)
    check_sizes(
        f"fusion '{name}'",
        num_classes=num_classes,
        **{f"input_dims['{m}']": d for m, d in input_dims.items()},
    )
    parameters = inspect.signature(builder).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    unknown = sorted(set(options) - set(fusion_options(name)))
    if unknown and not accepts_any:
        valid = ", ".join(f"{k}={v!r}" for k, v in fusion_options(name).items())
        raise TypeError(f"fusion '{name}' has no option(s) {unknown}; its options are: {valid}")
    return builder(input_dims=input_dims, num_classes=num_classes, **options)


def _builder(name: str) -> FusionBuilder:
    if name not in FUSIONS:
        raise ValueError(f"unknown fusion '{name}'; expected one of {sorted(FUSIONS)}")
    return FUSIONS[name]


def _encoders(input_dims: Mapping[str, int], hidden: int, feature_dim: int) -> dict[str, MLP]:
    return {m: MLP(d, [hidden], feature_dim) for m, d in input_dims.items()}


@register_fusion("early")
def early_fusion(
    input_dims: Mapping[str, int], num_classes: int, hidden: int = 64, layers: int = 2, dropout: float = 0.0
) -> Expert:
    """Flattened inputs concatenated, then one MLP with ``layers`` hidden layers of size ``hidden``."""
    network = MLP(sum(input_dims.values()), [hidden] * layers, num_classes, dropout)
    return EarlyFusion(tuple(input_dims), network, flatten=True)


@register_fusion("late")
def late_fusion(
    input_dims: Mapping[str, int],
    num_classes: int,
    hidden: int = 64,
    feature_dim: int | None = None,
    dropout: float = 0.0,
) -> Expert:
    """One MLP encoder per modality (``feature_dim`` features, default ``hidden``), joined, an MLP head."""
    features = feature_dim or hidden
    head = MLP(features * len(input_dims), [hidden], num_classes, dropout)
    return LateFusion(_encoders(input_dims, hidden, features), head)


@register_fusion("lrtf")
def low_rank_tensor_fusion(
    input_dims: Mapping[str, int],
    num_classes: int,
    hidden: int = 64,
    feature_dim: int | None = None,
    rank: int = 8,
    output_dim: int | None = None,
    form: FusionForm = "published",
) -> Expert:
    """One MLP encoder per modality, rank-``rank`` tensor fusion into ``output_dim`` (default ``hidden``),
    a linear head; ``form`` published (Liu et al.) or normalized (for many modalities)."""
    features = feature_dim or hidden
    output = output_dim or hidden
    dims = dict.fromkeys(input_dims, features)
    encoders = _encoders(input_dims, hidden, features)
    return LowRankTensorFusion(encoders, dims, rank, output, MLP(output, [], num_classes), form=form)


@register_fusion("lrtf-normalized")
def normalized_low_rank_tensor_fusion(
    input_dims: Mapping[str, int],
    num_classes: int,
    hidden: int = 64,
    feature_dim: int | None = None,
    rank: int = 8,
    output_dim: int | None = None,
) -> Expert:
    """``lrtf`` in its normalized form: unit-RMS features and unit-variance factors, so that it still trains
    with many modalities (the published form's product shrinks with every modality)."""
    return low_rank_tensor_fusion(
        input_dims, num_classes, hidden, feature_dim, rank, output_dim, form="normalized"
    )


@register_fusion("tensor")
def tensor_fusion(
    input_dims: Mapping[str, int],
    num_classes: int,
    hidden: int = 64,
    feature_dim: int | None = None,
    max_parameters: int = TENSOR_FUSION_PARAMETER_BUDGET,
    form: FusionForm = "published",
) -> Expert:
    """Small encoders (``feature_dim``, default ``max(4, hidden // 8)``), their outer product, an MLP head;
    ``form`` published (Zadeh et al.) or normalized (unit-RMS features, for many modalities).

    The head's input has ``(feature_dim + 1) ** M`` entries; above ``max_parameters`` this warns and says
    which ``feature_dim`` fits, and above 50 times that it refuses before allocating anything.
    """
    features = feature_dim or max(4, hidden // 8)
    fused = tensor_fusion_dim(dict.fromkeys(input_dims, features))
    count = _tensor_fusion_parameters(input_dims, num_classes, hidden, features)
    if count > max_parameters:  # checked before anything is allocated
        fits = [
            f
            for f in range(1, features)
            if _tensor_fusion_parameters(input_dims, num_classes, hidden, f) <= max_parameters
        ]
        shrink = (
            f"create_fusion('tensor', ..., feature_dim={fits[-1]}) has "
            f"{_tensor_fusion_parameters(input_dims, num_classes, hidden, fits[-1]):,}"
            if fits
            else "even feature_dim=1 does not fit; lower hidden"
        )
        text = (
            f"tensor fusion over {len(input_dims)} modalities has {count:,} parameters: its head reads the "
            f"outer product of ({features} + 1)-sized features, {fused:,} entries, with {hidden} units. "
            f"Shrink the per-modality feature size ({shrink}; the budget max_parameters is "
            f"{max_parameters:,}), or use 'lrtf' or 'null-token', whose size is linear in the number of "
            "modalities."
        )
        if count > TENSOR_FUSION_REFUSED_ABOVE * max_parameters:  # would allocate until the machine gives out
            raise ValueError(text)
        warnings.warn(text, UserWarning, stacklevel=3)
    encoders = _encoders(input_dims, hidden, features)
    return TensorFusion(encoders, MLP(fused, [hidden], num_classes), form=form)


@register_fusion("tensor-normalized")
def normalized_tensor_fusion(
    input_dims: Mapping[str, int],
    num_classes: int,
    hidden: int = 64,
    feature_dim: int | None = None,
    max_parameters: int = TENSOR_FUSION_PARAMETER_BUDGET,
) -> Expert:
    """``tensor`` in its normalized form: each modality's features scaled to unit RMS before the outer
    product, so that its high-order entries do not shrink with many modalities."""
    return tensor_fusion(input_dims, num_classes, hidden, feature_dim, max_parameters, form="normalized")


def _tensor_fusion_parameters(
    input_dims: Mapping[str, int], num_classes: int, hidden: int, features: int
) -> int:
    """Parameters of :func:`tensor_fusion`: the encoders ``MLP(d, [hidden], features)`` and the head."""
    encoders = sum((d + 1) * hidden + (hidden + 1) * features for d in input_dims.values())
    fused = tensor_fusion_dim(dict.fromkeys(input_dims, features))
    return encoders + (fused + 1) * hidden + (hidden + 1) * num_classes


@register_fusion("null-token")
def null_token_fusion(
    input_dims: Mapping[str, int],
    num_classes: int,
    hidden: int = 64,
    feature_dim: int | None = None,
    subset_prob: float = 0.5,
    min_modalities: int = 1,
    dropout: float = 0.0,
) -> Expert:
    """One MLP encoder per modality, a learned null token for each absent one, concatenated, an MLP head;
    trained on random subsets (see :class:`NullTokenFusion`)."""
    return _null_token_network(
        input_dims, num_classes, hidden, feature_dim, subset_prob, min_modalities, dropout
    )


def _null_token_network(
    input_dims: Mapping[str, int],
    num_classes: int,
    hidden: int,
    feature_dim: int | None,
    subset_prob: float,
    min_modalities: int,
    dropout: float,
) -> NullTokenFusion:
    features = feature_dim or hidden
    head = MLP(features * len(input_dims), [hidden], num_classes, dropout)
    dims = dict.fromkeys(input_dims, features)
    encoders = _encoders(input_dims, hidden, features)
    return NullTokenFusion(encoders, dims, head, subset_prob=subset_prob, min_modalities=min_modalities)


@register_fusion("null-token-product")
def null_token_product(
    input_dims: Mapping[str, int],
    num_classes: int,
    hidden: int = 64,
    feature_dim: int | None = None,
    k: int = 4,
    eval_subsets: int | None = None,
    max_eval_subsets: int = 64,
    min_modalities: int = 1,
    dropout: float = 0.0,
) -> Expert:
    """The ``null-token`` network, read as the paper's Section 5 product: ``k`` random subset-conditionals
    ``p(y | x_S)`` per training example, every subset (up to ``max_eval_subsets``) or a fixed sample of
    ``eval_subsets`` at test time (see :class:`SubsetProductFusion`)."""
    network = _null_token_network(input_dims, num_classes, hidden, feature_dim, 0.0, min_modalities, dropout)
    return SubsetProductFusion(network, k, eval_subsets, max_eval_subsets)
