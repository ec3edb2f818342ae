"""What every fusion does with its inputs first: check a float input's dtype against the weights'."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from i2m2.models.expert import Batch


def weight_dtype(module: nn.Module) -> torch.dtype | None:
    """The dtype of the module's first floating-point parameter (``None`` if it has none)."""
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), None)


def float_input(batch: Batch, modality: str, dtype: torch.dtype | None) -> Tensor:
    """``batch[modality]``, or a ValueError that says how to fix a float input of the wrong dtype.

    Integer inputs (token ids) pass: their encoder decides what they mean. Only floats must match, since
    torch's own error ("mat1 and mat2 must have the same dtype") names neither the modality nor the fix.
    Under autocast, which casts per operation, any float passes.
    """
    x = batch[modality]
    if dtype is None or not x.is_floating_point() or x.dtype == dtype:
        return x
    if not torch.is_autocast_enabled(x.device.type):
        raise ValueError(dtype_mismatch(modality, dtype, x.dtype))
    return x


def dtype_mismatch(modality: str, expected: torch.dtype, got: torch.dtype) -> str:
    """The message for a float input whose dtype differs from the model's (as ``check_modality`` words it)."""
    convert = "x.float()" if expected == torch.float32 else f"x.to({expected})"
    return (
        f"modality '{modality}': expected dtype {expected}, got {got}; "
        f"convert with {convert} or let the data layer cast it"
    )
