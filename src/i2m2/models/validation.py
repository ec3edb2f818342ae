"""Checks that turn bad input into one ValueError naming the modality or expert and what was expected."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from i2m2.errors import UserError

# Modality names become batch keys, module keys (no "."), and parts of file names (no "/", ":"), so
# only identifiers are allowed: two names never map to one file and none breaks a ModuleDict.
MODALITY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RESERVED_MODALITY_NAMES = {"inter": "the inter-modality expert's name"}


@dataclass(frozen=True)
class InputSpec:
    """What one modality's tensor must look like, per example (the batch axis excluded).

    Args:
        shape: per-example shape; ``None`` for an axis of any size (e.g. sequence length).
        dtype: the required dtype, or ``None`` for any (token ids are integers, images are floats).
    """

    shape: tuple[int | None, ...] | None = None
    dtype: torch.dtype | None = None


def check_modality(
    name: str,
    value: object,
    spec: InputSpec | None = None,
    rows: Tensor | None = None,
    check_values: bool = True,
) -> None:
    """Validate one modality's tensor: a Tensor with a batch axis, finite, matching ``spec`` if given.

    ``rows`` (boolean, per example) restricts the finiteness check to examples marked present.
    """
    if not isinstance(value, Tensor):
        raise ValueError(f"modality '{name}': expected a torch.Tensor, got {type(value).__name__}")
    if value.dim() == 0:
        raise ValueError(f"modality '{name}': expected a batch axis first, got a scalar tensor")
    if spec is not None and spec.dtype is not None and value.dtype != spec.dtype:
        convert = {torch.float32: "x.float()", torch.int64: "x.long()"}.get(spec.dtype, f"x.to({spec.dtype})")
        raise ValueError(
            f"modality '{name}': expected dtype {spec.dtype}, got {value.dtype}; "
            f"convert with {convert} or let the data layer cast it"
        )
    if spec is not None and spec.shape is not None:
        got = tuple(value.shape[1:])
        ok = len(got) == len(spec.shape) and all(
            e is None or e == g for e, g in zip(spec.shape, got, strict=True)
        )
        if not ok:
            want = tuple("*" if e is None else e for e in spec.shape)
            raise ValueError(
                f"modality '{name}': expected shape (batch, {', '.join(map(str, want))}), "
                f"got {tuple(value.shape)}"
            )
    if check_values and (value.is_floating_point() or value.is_complex()):
        checked = value if rows is None else value[rows.to(value.device)]
        if not torch.isfinite(checked).all():
            raise ValueError(f"modality '{name}': contains NaN or infinite values")


def check_modality_names(names: Iterable[object], where: str) -> None:
    """Every name must be an identifier (letters, digits, underscores; no leading digit) and not reserved.

    Raises:
        UserError: one line naming ``where`` (an experiment, a file), the name, and what is allowed.
    """
    for name in names:
        if not isinstance(name, str) or not MODALITY_NAME.fullmatch(name):
            raise UserError(
                f"{where}: modality name {name!r} cannot be used; expected letters, digits and "
                "underscores, not starting with a digit (e.g. 'audio', 'view_2')"
            )
        if name in RESERVED_MODALITY_NAMES:
            raise UserError(
                f"{where}: modality name {name!r} cannot be used; it is {RESERVED_MODALITY_NAMES[name]}"
            )


def check_sizes(where: str, **sizes: object) -> None:
    """Layer sizes must be positive integers (a negative one would fail deep inside torch)."""
    for name, size in sizes.items():
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"{where}: {name} must be an integer >= 1, got {size!r}")


def check_logits(
    expert: str, logits: object, batch_size: int, num_classes: int | None, num_tasks: int | None = None
) -> None:
    """An expert must return logits ``(batch, num_classes)``, or ``(batch, num_tasks, num_classes)``.

    The multi-task shape is accepted only when ``num_tasks`` is given, so a single-task model still
    rejects an expert that returns a stray extra axis.
    """
    want = f"({batch_size}, classes)" if num_tasks is None else f"({batch_size}, {num_tasks}, classes)"
    dims = 2 if num_tasks is None else 3
    if (
        not isinstance(logits, Tensor)
        or logits.dim() != dims
        or logits.shape[0] != batch_size
        or (num_tasks is not None and logits.shape[1] != num_tasks)
    ):
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"expert '{expert}': expected logits of shape {want}, got {shape}")
    if not logits.is_floating_point():
        raise ValueError(f"expert '{expert}': expected floating-point logits, got {logits.dtype}")
    if num_classes is not None and logits.shape[-1] != num_classes:
        raise ValueError(
            f"expert '{expert}': expected logits over {num_classes} classes, got {logits.shape[-1]}"
        )


def check_labels(labels: Tensor, num_classes: int) -> None:
    """Labels must be integers in ``0..num_classes-1``."""
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels: expected an integer tensor, got {labels.dtype}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels: expected values in 0..{num_classes - 1}, got range "
            f"{int(labels.min())}..{int(labels.max())}"
        )


def batch_size_of(batch: Mapping[str, Tensor]) -> int:
    """The common first-axis size of all tensors in the batch."""
    sizes = {name: t.shape[0] for name, t in batch.items() if isinstance(t, Tensor) and t.dim() > 0}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"modalities disagree on the batch size: {sizes}")
    if not sizes:
        raise ValueError("the batch holds no modality tensors")
    return next(iter(sizes.values()))
