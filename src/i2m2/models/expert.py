"""The one contract every expert follows: read some modalities of a batch, return logits over C classes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

Batch = dict[str, Tensor]


class Expert(nn.Module):
    """Base class of all experts.

    An expert declares the modalities it reads (``self.modalities``) so that the product of experts can
    leave it out for examples where one of them is missing, and maps a modality-keyed batch to logits of
    shape ``(batch, num_classes)``.

    Args:
        modalities: names of the batch keys this expert reads.
    """

    def __init__(self, modalities: Sequence[str]) -> None:
        super().__init__()
        if not modalities:
            raise ValueError("an expert must read at least one modality")
        self.modalities: tuple[str, ...] = tuple(modalities)

    def forward(self, batch: Batch) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class UnimodalExpert(Expert):
    """Wraps any classifier ``network(x) -> logits`` of one modality as an expert.

    This is how a user's existing single-modality model enters I2M2 unchanged.

    Args:
        modality: the batch key the network reads.
        network: a module mapping that tensor to logits ``(batch, num_classes)``.
    """

    def __init__(self, modality: str, network: nn.Module) -> None:
        super().__init__((modality,))
        self.network = network

    def forward(self, batch: Batch) -> Tensor:
        return self.network(batch[self.modalities[0]])


def as_expert(name: str, module: nn.Module) -> Expert:
    """Return ``module`` if it already is an expert, else wrap it as the unimodal expert of ``name``."""
    if isinstance(module, Expert):
        return module
    if not isinstance(module, nn.Module):
        raise TypeError(f"expert '{name}' must be a torch.nn.Module, got {type(module).__name__}")
    return UnimodalExpert(name, module)


def feature_concat(features: Sequence[Tensor]) -> Tensor:
    """Flatten each ``(batch, ...)`` feature tensor and concatenate along the feature axis."""
    return torch.cat([f.flatten(1) for f in features], dim=1)
