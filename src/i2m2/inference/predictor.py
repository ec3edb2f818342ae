"""A trained model ready for new data: raw inputs per modality in, class probabilities out.

Any modality may be absent: left out of ``inputs`` (absent for every example), marked absent per example
by a ``present`` mask, or given as an all-NaN row. The experts that read an absent modality then drop out
of the product for those examples (a fusion expert too, unless it handles missing modalities itself), as
in Eq. (3) over the experts present. An example with no modality at all gets the prior (or uniform).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import torch
from torch import Tensor

from i2m2.errors import UserError
from i2m2.inference.graph import PredictionGraph
from i2m2.inference.pipelines import run_pipeline
from i2m2.inference.preprocessing import Preprocessing
from i2m2.models.i2m2 import I2M2

NUMERIC = "biuf"


def tokenize(modality: str, texts: np.ndarray, text: dict[str, Any], length: int) -> np.ndarray:
    """Strings -> ``(N, length)`` int64 token ids, as the experiment's vocabulary encoded training data."""
    pattern = re.compile(text["pattern"])
    index = {w: i for i, w in enumerate(text["words"])}
    ids = np.full((len(texts), length), text["pad"], dtype=np.int64)
    for row, value in enumerate(texts):
        if not isinstance(value, str):
            raise UserError(f"modality '{modality}' row {row}: expected a string, got {type(value).__name__}")
        words = pattern.findall(value.lower() if text["lowercase"] else value)
        tokens = [index.get(w, text["unknown"]) for w in words][:length]
        ids[row, : len(tokens)] = tokens
    return ids


def decode_images(modality: str, paths: np.ndarray, size: list[int], resize: bool = False) -> np.ndarray:
    """Image file paths ``(N,)`` (or ``(N, k)``: NLVR2's pairs) -> ``(N, [k,] 3, H, W)`` uint8 RGB.

    ``resize``: resized to ``H x W`` as the loader did (:func:`i2m2.data.image_files.resize_to_tensor`,
    bilinear, before its /255); else a file of another size is refused. A missing or unreadable file: one
    error naming the row."""
    from PIL import Image

    from i2m2.data.image_files import open_image
    from i2m2.errors import DataError

    flat = paths.reshape(len(paths), -1)
    out = np.empty((*flat.shape, 3, *size), dtype=np.uint8)
    for (row, column), path in np.ndenumerate(flat):
        if not isinstance(path, str | PathLike):
            raise UserError(
                f"modality '{modality}' row {row}: expected an image file path, got {type(path).__name__}"
            )
        try:
            image = open_image(Path(path))
        except DataError as err:
            raise UserError(f"modality '{modality}' row {row}: {err}") from None
        if resize:
            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.uint8)
        if pixels.shape[:2] != tuple(size):
            raise UserError(
                f"modality '{modality}' row {row}: {path} is {pixels.shape[1]}x{pixels.shape[0]}; expected "
                f"{size[1]}x{size[0]} images"
            )
        out[row, column] = pixels.transpose(2, 0, 1)
    return out.reshape(*paths.shape, 3, *size)


class Predictor:
    """One trained job with its preprocessing (made by :func:`i2m2.load_model`).

    Attributes:
        graph: the prediction graph shared with export and serving.
        preprocessing: the job's saved preprocessing.
        about: the run, method, group and seed, and ``selection``: why this seed.
    """

    def __init__(self, model: I2M2, preprocessing: Preprocessing, about: dict[str, Any]) -> None:
        self.graph = PredictionGraph(model, preprocessing).eval()
        self.preprocessing = preprocessing
        self.about = about

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.graph.modalities

    @property
    def classes(self) -> list[str]:
        return self.preprocessing.classes

    @property
    def selection(self) -> str:
        return str(self.about.get("selection", ""))

    def __repr__(self) -> str:
        a = self.about
        return (
            f"Predictor({a.get('experiment')} {a.get('method')} group={a.get('group')!r} "
            f"seed={a.get('seed')}; modalities {list(self.modalities)}, {len(self.classes)} classes)"
        )

    @overload
    def predict(
        self,
        inputs: Mapping[str, Any],
        present: Mapping[str, Any] | None = None,
        experts: Literal[False] = False,
        batch_size: int = 4096,
    ) -> np.ndarray: ...

    @overload
    def predict(
        self,
        inputs: Mapping[str, Any],
        present: Mapping[str, Any] | None = None,
        experts: Literal[True] = True,
        batch_size: int = 4096,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]: ...

    def predict(
        self,
        inputs: Mapping[str, Any],
        present: Mapping[str, Any] | None = None,
        experts: bool = False,
        batch_size: int = 4096,
    ) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
        """Class probabilities ``(N, C)`` (``(N, T, C)`` with tasks) for raw inputs.

        Args:
            inputs: modality -> array ``(N, *shape)`` in the experiment's raw form (what its data files
                hold), or ``(N,)`` strings where the experiment reads text (questions) or image files
                (paths); a modality left out is absent for every example.
            present: optional modality -> bool ``(N,)``; False leaves that modality's experts out.
            experts: also return each expert's log-probabilities (NaN where it was left out).
            batch_size: examples per forward pass.
        """
        tensors, masks, size = self.prepare(inputs, present, exact=True)
        out: list[Tensor] = []
        expert_out: dict[str, list[Tensor]] = {n: [] for n in self.graph.expert_names}
        with torch.inference_mode():
            for start in range(0, size, max(1, batch_size)):
                part = slice(start, start + batch_size)
                log_probs, expert_lp, expert_masks = self.graph(
                    {m: t[part] for m, t in tensors.items()}, {m: k[part] for m, k in masks.items()}
                )
                out.append(log_probs.exp())
                if experts:
                    for name, lp in expert_lp.items():
                        keep = expert_masks[name].view(-1, *[1] * (lp.dim() - 1))
                        expert_out[name].append(torch.where(keep, lp, torch.full_like(lp, float("nan"))))
        probabilities = torch.cat(out).numpy() if out else np.zeros((0, len(self.classes)), np.float32)
        if not experts:
            return probabilities
        return probabilities, {n: torch.cat(v).numpy() for n, v in expert_out.items() if v}

    def prepare(
        self, inputs: Mapping[str, Any], present: Mapping[str, Any] | None = None, exact: bool = False
    ) -> tuple[dict[str, Tensor], dict[str, Tensor], int]:
        """Raw inputs checked and turned into the graph's tensors and presence masks (one error naming
        the modality and what was expected for anything else).

        ``exact`` keeps float64 raw values of a computed-on modality in float64, so they standardize as the
        float64 readers did at training time; otherwise every such modality is float32, the exported
        graphs' input type."""
        if self.preprocessing.unsupported:
            raise UserError(self.preprocessing.unsupported)
        if not isinstance(inputs, Mapping):
            raise UserError(
                f"inputs: expected a dict of modality -> array, got {type(inputs).__name__}; "
                f"modalities {list(self.modalities)}"
            )
        known = self.preprocessing.modalities  # the experiment's; a unimodal model reads one of them
        unknown = sorted(set(inputs) - set(known), key=str) + sorted(set(present or {}) - set(known), key=str)
        if unknown:
            raise UserError(f"unknown modality {unknown[0]!r}; expected some of {list(known)}")
        arrays = {m: self._array(m, x) for m, x in inputs.items()}
        if not any(m in arrays for m in self.modalities):
            raise UserError(f"inputs: no modality the model reads; expected some of {list(self.modalities)}")
        sizes = {m: len(a) for m, a in arrays.items()}
        if len(set(sizes.values())) > 1:
            raise UserError(f"inputs: modalities disagree on the number of examples: {sizes}")
        size = next(iter(sizes.values()))
        tensors: dict[str, Tensor] = {}
        masks: dict[str, Tensor] = {}
        for m in self.modalities:
            spec = self.preprocessing.inputs[m]
            dtype = getattr(torch, spec.input_dtype)
            if m not in arrays:
                tensors[m] = torch.zeros((size, *spec.shape), dtype=dtype)
                masks[m] = torch.zeros(size, dtype=torch.bool)
                continue
            array = arrays[m]
            rows = np.ones(size, dtype=bool)
            if array.dtype.kind == "f":
                finite = np.isfinite(array).reshape(size, -1)
                if not finite.all():
                    nan_rows = np.isnan(array).reshape(size, -1).all(1)
                    bad = np.flatnonzero(~finite.all(1) & ~nan_rows)
                    if len(bad) and spec.impute is None:
                        raise UserError(
                            f"modality '{m}' row {int(bad[0])}: holds NaN or infinite values; expected "
                            "finite values, or all NaN to mark the modality absent for that example"
                        )
                    rows = ~nan_rows
            if present is not None and m in present:
                rows = rows & self._mask(m, present[m], size)
            if spec.bounds is not None:
                self._check_bounds(m, array, rows, spec.bounds)
            if exact and array.dtype == np.float64 and spec.input_dtype.startswith("float"):
                dtype = torch.float64
            tensors[m] = torch.from_numpy(np.ascontiguousarray(array)).to(dtype)
            masks[m] = torch.from_numpy(rows)
        return tensors, masks, size

    def _array(self, modality: str, value: Any) -> np.ndarray:
        spec = self.preprocessing.inputs[modality]
        try:
            array = value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)
        except (ValueError, TypeError) as err:
            raise UserError(f"modality '{modality}': not an array ({err})") from None
        if spec.pipeline is not None:
            ready = run_pipeline(modality, array, spec.pipeline)
            array = array if ready is None else ready
        if array.dtype.kind in "UO" and array.ndim == 1 and spec.text is not None:
            array = tokenize(modality, array, spec.text, spec.shape[0])
        elif array.dtype.kind in "UO" and array.ndim == len(spec.shape) - 2 and spec.image_file is not None:
            file = spec.image_file  # (N,) paths for (3, H, W) images, (N, k) for k-image groups
            array = decode_images(modality, array, file["size"], bool(file.get("resize")))
        if array.dtype.kind not in NUMERIC:
            raise UserError(
                f"modality '{modality}': expected numbers ({spec.dtype}), got an array of {array.dtype}"
            )
        if array.dtype.kind == "f" and spec.dtype.startswith(("int", "uint", "bool")):
            raise UserError(f"modality '{modality}': expected {spec.dtype} values, got {array.dtype}")
        if array.ndim == 0 or array.shape[1:] not in (spec.shape, *spec.also_shapes):
            expected = " or ".join(
                "(" + ", ".join(["N", *map(str, s)]) + ")" for s in (spec.shape, *spec.also_shapes)
            )
            raise UserError(f"modality '{modality}': expected shape {expected}, got {array.shape}")
        return array.reshape(len(array), *spec.shape)

    @staticmethod
    def _check_bounds(
        modality: str, array: np.ndarray, rows: np.ndarray, bounds: tuple[float, float]
    ) -> None:
        """Values of present rows outside the experiment's raw range (e.g. 0..1 images fed to a model that
        divides 0..255 ones by 255) are refused rather than predicted on silently."""
        low, high = bounds
        flat = array.reshape(len(array), -1)
        with np.errstate(invalid="ignore"):
            outside = ((flat < low) | (flat > high)).any(1) & rows
        if outside.any():
            row = int(np.flatnonzero(outside)[0])
            values = flat[row][np.isfinite(flat[row])] if flat.dtype.kind == "f" else flat[row]
            raise UserError(
                f"modality '{modality}' row {row}: values {values.min():g}..{values.max():g} outside the "
                f"experiment's raw range {low:g}..{high:g}"
            )

    @staticmethod
    def _mask(modality: str, value: Any, size: int) -> np.ndarray:
        mask = value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)
        if mask.dtype != np.bool_ or mask.shape != (size,):
            raise UserError(
                f"present['{modality}']: expected a bool array of shape ({size},), "
                f"got {mask.dtype} {mask.shape}"
            )
        return mask
