"""What turns a raw input into what the model reads, saved with each job as plain JSON.

Training reads inputs through the experiment's data loader, which may standardize them with training
statistics (the ``features`` route) or map answers to classes. A trained model is only usable on new data
with the same steps, so each job keeps them beside its checkpoint (``checkpoints/<stem>.inputs.json``):
per modality the raw per-example shape and dtype and an optional standardization, plus the class names.
Plain numbers and strings only: reading the file runs no code.

A data reader states what it knows in its splits' ``preprocessing`` attribute (a plain dict of the same
form); shapes and dtypes it leaves out (of a modality, or of a whole entry) are read from the first
training example.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from i2m2.errors import DataError
from i2m2.inference.pipelines import pipeline_settings

FORMAT = 1
DTYPES = ("float32", "float64", "float16", "int64", "int32", "uint8", "bool")


@dataclass
class Standardize:
    """``(x / scale - mean) / std`` on the flattened input (z-scores; AV-MNIST's /255 with scale 255).

    Each list holds one value for every feature, one per position of the last axis (broadcast over the
    others, as MIMIC's per-measurement statistics are), or a single value for all (AV-MNIST's 255).
    """

    scale: list[float]
    mean: list[float]
    std: list[float]

    def expanded(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(scale, mean, std)`` as float64 vectors of one value per feature of ``shape``."""
        size = int(np.prod(shape, dtype=np.int64))
        out = []
        for name in ("scale", "mean", "std"):
            values = np.asarray(getattr(self, name), dtype=np.float64)
            if values.ndim != 1 or len(values) not in (1, size, shape[-1] if shape else 1):
                raise ValueError(
                    f"standardize {name} has {values.size} values; expected 1, {size} (one per feature) "
                    f"or {shape[-1] if shape else 1} (one per position of the last axis)"
                )
            out.append(np.broadcast_to(values, shape).reshape(-1) if len(values) != size else values)
        return out[0], out[1], out[2]


@dataclass
class ModalityInput:
    """One modality's raw per-example form and the steps that make it the model's input.

    Steps, in order (each optional): non-finite values replaced by ``impute`` (MIMIC's NaN -> 0; an all-NaN
    row still marks the modality absent), ``standardize`` (flattens), a reshape to ``model_shape``.

    Attributes:
        shape: the raw per-example shape; ``also_shapes`` lists others of the same size it accepts.
        dtype: the raw dtype (kept as it is when nothing transforms it: token ids, masks).
        bounds: ``(low, high)`` raw values must lie in (AV-MNIST's 0..255, with slack).
        text: for token-id modalities, how strings become ids (``words``: the vocabulary, id = position;
            ``pattern``: the regular expression of a word; ``lowercase``; ``unknown`` and ``pad`` ids;
            at most ``shape[0]`` tokens): questions may then be given as strings.
        image_file: for image modalities, ``{"size": [H, W]}``: image file paths are decoded to RGB
            ``(3, H, W)`` uint8 (a file of another size is refused, as at training time), or with
            ``"resize": true`` resized to it as the loader did; ``(N, k)`` paths give ``(k, 3, H, W)``.
        pipeline: a built-in raw-input pipeline by name with its plain settings
            (:mod:`i2m2.inference.pipelines`: fastMRI's k-space FFT, crop and scaling); raw files or
            arrays go through it, model-ready arrays of ``shape`` pass as they are.
    """

    shape: tuple[int, ...]
    dtype: str = "float32"
    standardize: Standardize | None = None
    also_shapes: tuple[tuple[int, ...], ...] = ()
    impute: float | None = None
    bounds: tuple[float, float] | None = None
    model_shape: tuple[int, ...] | None = None
    text: dict[str, Any] | None = None
    image_file: dict[str, Any] | None = None
    pipeline: dict[str, Any] | None = None

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def input_dtype(self) -> str:
        """The dtype raw values are cast to before the transform (float32 when one computes on them)."""
        return "float32" if self.standardize is not None or self.impute is not None else self.dtype

    def to_plain(self) -> dict[str, Any]:
        plain: dict[str, Any] = {"shape": list(self.shape), "dtype": self.dtype}
        if self.standardize is not None:
            plain["standardize"] = vars(self.standardize)
        if self.also_shapes:
            plain["also_shapes"] = [list(s) for s in self.also_shapes]
        if self.impute is not None:
            plain["impute"] = self.impute
        if self.bounds is not None:
            plain["bounds"] = list(self.bounds)
        if self.model_shape is not None:
            plain["model_shape"] = list(self.model_shape)
        if self.text is not None:
            plain["text"] = self.text
        if self.image_file is not None:
            plain["image_file"] = self.image_file
        if self.pipeline is not None:
            plain["pipeline"] = self.pipeline
        return plain

    @classmethod
    def from_plain(cls, data: dict[str, Any], modality: str) -> ModalityInput:
        """Read :meth:`to_plain`'s form (``dtype`` defaults to float32); ValueError for anything else."""
        dtype = data.get("dtype", "float32")
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r} of '{modality}' is not one of {DTYPES}")
        s = data.get("standardize")
        standardize = None if s is None else Standardize(*(list(map(float, s[k])) for k in STATS))
        bounds = data.get("bounds")
        model_shape = data.get("model_shape")
        spec = cls(
            _shape(data["shape"]),
            dtype,
            standardize,
            tuple(_shape(a) for a in data.get("also_shapes", ())),
            None if data.get("impute") is None else float(data["impute"]),
            None if bounds is None else (float(bounds[0]), float(bounds[1])),
            None if model_shape is None else _shape(model_shape),
            _text(data.get("text")),
            _image_file(data.get("image_file")),
            pipeline_settings(data.get("pipeline")),
        )
        if standardize is not None:
            try:
                standardize.expanded(spec.shape)
            except ValueError as err:
                raise ValueError(
                    f"the statistics of '{modality}' do not match its shape {spec.shape}: {err}"
                ) from None
        for other in (*spec.also_shapes, *([] if spec.model_shape is None else [spec.model_shape])):
            if int(np.prod(other, dtype=np.int64)) != spec.size:
                raise ValueError(f"shape {other} of '{modality}' does not hold its {spec.size} values")
        return spec


STATS = ("scale", "mean", "std")


def _text(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    words = [str(w) for w in value["words"]]
    return {
        "words": words,
        "pattern": str(value["pattern"]),
        "lowercase": bool(value.get("lowercase", False)),
        "unknown": int(value["unknown"]),
        "pad": int(value["pad"]),
    }


def _image_file(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    return {"size": [int(d) for d in value["size"]]} | ({"resize": True} if value.get("resize") else {})


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in value)


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
        inputs = {m: i.to_plain() for m, i in self.inputs.items()}
        plain = {"format": FORMAT, "inputs": inputs, "classes": self.classes}
        return plain | ({"unsupported": self.unsupported} if self.unsupported else {}) | self.extra

    @classmethod
    def from_plain(cls, data: Any, where: str) -> Preprocessing:
        """Read what :meth:`to_plain` wrote; a :class:`DataError` naming ``where`` for anything else."""
        try:
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError(f"expected a dict with format {FORMAT}")
            inputs = {m: ModalityInput.from_plain(i, m) for m, i in data["inputs"].items()}
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
    if any(m not in given or "shape" not in given[m] for m in modalities):
        first = splits.train[0][0]
        example = {m: torch.as_tensor(first[m]) for m in modalities if m in first}
    inputs = {}
    for m in modalities:
        if m in given:
            entry = dict(given[m])
            if "shape" not in entry and m in example:  # e.g. a backbone's: known once it has run
                entry["shape"] = list(example[m].shape)
                entry.setdefault("dtype", str(example[m].dtype).removeprefix("torch."))
            inputs[m] = ModalityInput.from_plain(entry, m)
        elif m in example:
            inputs[m] = ModalityInput(tuple(example[m].shape), str(example[m].dtype).removeprefix("torch."))
    classes = [str(c) for c in stated.get("classes", range(num_classes))]
    extra = {k: v for k, v in stated.items() if k not in ("inputs", "classes", "unsupported")}
    return Preprocessing(inputs, classes, stated.get("unsupported"), extra)


class InputTransform(nn.Module):
    """One modality's raw batch ``(B, *shape)`` -> the model's input, absent rows zero-filled.

    The steps of :class:`ModalityInput`: imputation, standardization (flattening; the statistics are float64
    buffers, so they travel inside an exported graph, applied in the input's float precision: float64 raw
    values standardize as the float64 readers did), reshaping; a modality without steps is cast to its
    training dtype. Zero-filling after the transform keeps an absent row's content (NaN, garbage) out of
    every present row's result.
    """

    def __init__(self, spec: ModalityInput) -> None:
        super().__init__()
        self.dtype = getattr(torch, spec.dtype)
        self.impute = spec.impute
        self.model_shape = spec.model_shape
        self.standardized = spec.standardize is not None
        self.scale: Tensor
        self.mean: Tensor
        self.std: Tensor
        if spec.standardize is not None:
            for name, values in zip(STATS, spec.standardize.expanded(spec.shape), strict=True):
                self.register_buffer(name, torch.from_numpy(np.array(values, dtype=np.float64)))

    def forward(self, x: Tensor, present: Tensor) -> Tensor:
        if self.impute is not None:
            x = x if x.dtype == torch.float64 else x.float()
            x = torch.where(torch.isfinite(x), x, torch.full_like(x, self.impute))
        if self.standardized:
            x = x.flatten(1)
            x = x if x.dtype == torch.float64 else x.float()
            x = ((x / self.scale.to(x.dtype) - self.mean.to(x.dtype)) / self.std.to(x.dtype)).float()
        else:
            x = x.to(self.dtype)
        if self.model_shape is not None:
            x = x.reshape(-1, *self.model_shape)
        rows = present.view(-1, *[1] * (x.dim() - 1))
        return torch.where(rows, x, torch.zeros_like(x))
