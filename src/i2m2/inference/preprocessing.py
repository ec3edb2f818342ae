"""What turns a raw input into what the model reads, saved with each job as plain JSON.

Training reads inputs through the experiment's data loader, which may standardize them with training
statistics (the ``features`` route) or map answers to classes. A trained model is only usable on new data
with the same steps, so each job keeps them beside its checkpoint (``checkpoints/<stem>.inputs.json``):
per modality the raw per-example shape and dtype and an optional standardization, plus the class names.
Plain numbers and strings only: reading the file runs no code.

A data reader states what it knows in its splits' ``preprocessing`` attribute (a plain dict of the same
form); shapes and dtypes it leaves out are read from the first training example.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from i2m2.errors import DataError

FORMAT = 1
DTYPES = ("float32", "float64", "float16", "int64", "int32", "uint8", "bool")


@dataclass
class Standardize:
    """``(x / scale - mean) / std`` per feature of the flattened input (the ``features`` route's)."""

    scale: list[float]
    mean: list[float]
    std: list[float]


@dataclass
class ModalityInput:
    """One modality's raw per-example ``shape`` and ``dtype``, and how it is standardized (if at all)."""

    shape: tuple[int, ...]
    dtype: str = "float32"
    standardize: Standardize | None = None

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass
class Preprocessing:
    """Everything between a raw example and the model's batch, for every modality, and the class names.

    Args:
        inputs: modality -> its raw form and transform, in the experiment's modality order.
        classes: the name of each class (``"0"``, ``"1"``, ... when the data names none).
        unsupported: why raw inputs of this experiment cannot be turned into model inputs here (files,
            vocabularies or transforms not saved); prediction then refuses raw inputs with this message.
    """

    inputs: dict[str, ModalityInput]
    classes: list[str]
    unsupported: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.inputs)

    def to_plain(self) -> dict[str, Any]:
        inputs = {
            m: {"shape": list(i.shape), "dtype": i.dtype}
            | ({} if i.standardize is None else {"standardize": vars(i.standardize)})
            for m, i in self.inputs.items()
        }
        plain = {"format": FORMAT, "inputs": inputs, "classes": self.classes}
        return plain | ({"unsupported": self.unsupported} if self.unsupported else {}) | self.extra

    @classmethod
    def from_plain(cls, data: Any, where: str) -> Preprocessing:
        """Read what :meth:`to_plain` wrote; a :class:`DataError` naming ``where`` for anything else."""
        try:
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError(f"expected a dict with format {FORMAT}")
            inputs = {}
            for m, i in data["inputs"].items():
                if i["dtype"] not in DTYPES:
                    raise ValueError(f"dtype {i['dtype']!r} of '{m}' is not one of {DTYPES}")
                s = i.get("standardize")
                standardize = None if s is None else Standardize(s["scale"], s["mean"], s["std"])
                inputs[m] = ModalityInput(tuple(int(d) for d in i["shape"]), i["dtype"], standardize)
                if standardize and not len(standardize.mean) == len(standardize.std) == inputs[m].size:
                    raise ValueError(f"the statistics of '{m}' do not match its shape {inputs[m].shape}")
            classes = [str(c) for c in data["classes"]]
            extra = {k: v for k, v in data.items() if k not in ("format", "inputs", "classes", "unsupported")}
            return cls(inputs, classes, data.get("unsupported"), extra)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise DataError(f"{where}: not an i2m2 preprocessing record ({err})") from None

    def save(self, path: Path) -> None:
        from i2m2.atomic import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_plain()) + "\n")

    @classmethod
    def load(cls, path: Path) -> Preprocessing:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: not a readable preprocessing record ({err})") from None
        return cls.from_plain(data, str(path))


def of_splits(splits: Any, modalities: tuple[str, ...], num_classes: int) -> Preprocessing:
    """The preprocessing of a job's data: what the reader stated, shapes and dtypes from the first example."""
    stated = getattr(splits, "preprocessing", None) or {}
    given = stated.get("inputs", {})
    example: dict[str, Tensor] = {}
    if any(m not in given for m in modalities):
        first = splits.train[0][0]
        example = {m: torch.as_tensor(first[m]) for m in modalities if m in first}
    inputs = {}
    for m in modalities:
        if m in given:
            s = given[m].get("standardize")
            standardize = None if s is None else Standardize(*(s[k] for k in ("scale", "mean", "std")))
            inputs[m] = ModalityInput(tuple(given[m]["shape"]), given[m].get("dtype", "float32"), standardize)
        elif m in example:
            inputs[m] = ModalityInput(tuple(example[m].shape), str(example[m].dtype).removeprefix("torch."))
    classes = [str(c) for c in stated.get("classes", range(num_classes))]
    extra = {k: v for k, v in stated.items() if k not in ("inputs", "classes", "unsupported")}
    return Preprocessing(inputs, classes, stated.get("unsupported"), extra)


class InputTransform(nn.Module):
    """One modality's raw batch ``(B, *shape)`` -> the model's input, absent rows zero-filled.

    Standardized modalities are flattened and standardized in float32 (the statistics are buffers, so they
    travel inside an exported graph); others are cast to their training dtype. Zero-filling after the
    transform keeps an absent row's content (NaN, garbage) out of every present row's result.
    """

    def __init__(self, spec: ModalityInput) -> None:
        super().__init__()
        self.dtype = getattr(torch, spec.dtype)
        s = spec.standardize
        self.standardized = s is not None
        self.scale: Tensor
        self.mean: Tensor
        self.std: Tensor
        if s is not None:
            self.register_buffer("scale", torch.tensor(s.scale, dtype=torch.float64).float())
            self.register_buffer("mean", torch.tensor(s.mean, dtype=torch.float64).float())
            self.register_buffer("std", torch.tensor(s.std, dtype=torch.float64).float())

    def forward(self, x: Tensor, present: Tensor) -> Tensor:
        if self.standardized:
            x = (x.flatten(1).float() / self.scale - self.mean) / self.std
        else:
            x = x.to(self.dtype)
        rows = present.view(-1, *[1] * (x.dim() - 1))
        return torch.where(rows, x, torch.zeros_like(x))
