"""The paper's methods as selections from one bank of experts: unimodal:<m>, intra, inter, i2m2.

This is the one home of method and row names. A run's rows are ``unimodal:<m>``, ``intra``, ``inter`` and
``i2m2``; when an experiment compares several fusions they read ``inter[<fusion>]`` and ``i2m2[<fusion>]``.
An experiment whose inputs are flat vectors also has ``logistic``: the baseline a user tries first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from itertools import combinations
from typing import Any

from torch import nn

from i2m2.models.expert import Expert
from i2m2.models.fusion.early import EarlyFusion
from i2m2.models.i2m2 import I2M2, INTER

UNIMODAL_PREFIX = "unimodal:"
# Multinomial logistic regression on the concatenated (flattened) inputs of every modality.
LOGISTIC = "logistic"
JOINT_METHODS = ("intra", "inter", "i2m2")
# The products fine-tuned jointly in stage 2 from their stage-1 experts.
STAGE2_METHODS = ("intra", "i2m2")
_FUSED_ROW = re.compile(r"^(inter|i2m2)(?:\[(.+)\])?$")


def method_base(row: str) -> str:
    """``unimodal``, ``intra``, ``inter`` or ``i2m2`` of a row name (a fusion tag like ``[lf]`` dropped)."""
    if row.startswith(UNIMODAL_PREFIX):
        return "unimodal"
    match = _FUSED_ROW.match(row)
    return match.group(1) if match else row


def row_fusion(row: str) -> str | None:
    """The fusion a row names (``i2m2[lrtf]`` -> ``lrtf``), or ``None`` when it names none."""
    match = _FUSED_ROW.match(row)
    return match.group(2) if match else None


def fused_row(base: str, fusion: str, tagged: bool) -> str:
    """The row of ``inter`` or ``i2m2`` with ``fusion``: tagged when a run compares several fusions."""
    return f"{base}[{fusion}]" if tagged else base


def inter_row_of(i2m2_row: str) -> str:
    """The stand-alone inter row an I2M2 row starts from: ``i2m2[lf]`` -> ``inter[lf]``."""
    return "inter" + i2m2_row.removeprefix("i2m2")


def method_names(modalities: Sequence[str]) -> list[str]:
    """Every method for these modalities, unimodal ones first."""
    return [UNIMODAL_PREFIX + m for m in modalities] + list(JOINT_METHODS)


def inter_subsets(modalities: Sequence[str], all_subsets: bool = False) -> dict[str, tuple[str, ...]]:
    """Name -> modalities of each inter expert: one over all (``"inter"``), or one per subset of size >= 2."""
    if not all_subsets or len(modalities) == 2:
        return {INTER: tuple(modalities)}
    subsets: dict[str, tuple[str, ...]] = {}
    for size in range(2, len(modalities) + 1):
        for subset in combinations(modalities, size):
            name = INTER if size == len(modalities) else INTER + ":" + "+".join(subset)
            subsets[name] = subset
    return subsets


def experts_of(method: str, modalities: Sequence[str], all_subsets: bool = False) -> list[str]:
    """Names of the experts a method multiplies together."""
    unimodal = list(modalities)
    inter = list(inter_subsets(modalities, all_subsets))
    if method.startswith(UNIMODAL_PREFIX):
        modality = method[len(UNIMODAL_PREFIX) :]
        if modality not in modalities:
            raise ValueError(
                f"unknown modality '{modality}' in method '{method}'; modalities: {list(modalities)}"
            )
        return [modality]
    if method == "intra":
        return unimodal
    if method == "inter":
        return inter
    if method == "i2m2":
        return unimodal + inter
    raise ValueError(f"unknown method '{method}'; expected one of {method_names(modalities)}")


def build_method(
    method: str,
    modalities: Sequence[str],
    unimodal: Callable[[str], nn.Module],
    inter: Callable[[tuple[str, ...]], Expert],
    all_subsets: bool = False,
    **i2m2_kwargs: Any,
) -> I2M2:
    """Build one method from factories, so every method is made of the same parts.

    Args:
        method: ``unimodal:<modality>``, ``intra``, ``inter`` or ``i2m2``.
        modalities: all modalities of the task (at least two for the joint methods).
        unimodal: builds the classifier of one modality.
        inter: builds the inter-modality expert over a tuple of modalities.
        all_subsets: one inter expert for every subset of two or more modalities (paper, Section 5).
        i2m2_kwargs: passed to :class:`I2M2` (``num_classes``, ``log_prior``, ``input_specs``).
    """
    if len(modalities) < 2 and not method.startswith(UNIMODAL_PREFIX):
        raise ValueError(f"method '{method}' needs at least two modalities, got {list(modalities)}")
    names = experts_of(method, modalities, all_subsets)
    subsets = inter_subsets(modalities, all_subsets)
    unimodal_experts: Mapping[str, nn.Module] = {n: unimodal(n) for n in names if n in modalities}
    inter_experts = {n: inter(subsets[n]) for n in names if n in subsets}
    return I2M2(experts=unimodal_experts, inter=inter_experts, **i2m2_kwargs)


def build_logistic(input_dims: Mapping[str, int], num_classes: int) -> I2M2:
    """The ``logistic`` row: one linear layer over every modality's flattened input, concatenated (its
    softmax is multinomial logistic regression; weight decay is its L2 penalty). One expert reading every
    modality, so the run's tables, predictions and analyses treat it as any other row."""
    layer = nn.Linear(sum(input_dims.values()), num_classes)
    return I2M2(
        inter={LOGISTIC: EarlyFusion(tuple(input_dims), layer, flatten=True)}, num_classes=num_classes
    )
