"""A trained model ready for new data: raw inputs per modality in, class probabilities out.

Any modality may be absent: left out of ``inputs`` (absent for every example), marked absent per example
by a ``present`` mask, or given as an all-NaN row. The experts that read an absent modality then drop out
of the product for those examples (a fusion expert too, unless it handles missing modalities itself), as
in Eq. (3) over the experts present. An example with no modality at all gets the prior (or uniform).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, overload

import numpy as np
import torch
from torch import Tensor

from i2m2.errors import UserError
from i2m2.inference.graph import PredictionGraph
from i2m2.inference.preprocessing import Preprocessing
from i2m2.models.i2m2 import I2M2

NUMERIC = "biuf"


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
                hold); a modality left out is absent for every example.
            present: optional modality -> bool ``(N,)``; False leaves that modality's experts out.
            experts: also return each expert's log-probabilities (NaN where it was left out).
            batch_size: examples per forward pass.
        """
        tensors, masks, size = self.prepare(inputs, present)
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
        self, inputs: Mapping[str, Any], present: Mapping[str, Any] | None = None
    ) -> tuple[dict[str, Tensor], dict[str, Tensor], int]:
        """Raw inputs checked and turned into the graph's tensors and presence masks (one error naming
        the modality and what was expected for anything else)."""
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
            dtype = torch.float32 if spec.standardize is not None else getattr(torch, spec.dtype)
            if m not in arrays:
                tensors[m] = torch.zeros((size, *spec.shape), dtype=dtype)
                masks[m] = torch.zeros(size, dtype=torch.bool)
                continue
            array = arrays[m]
            rows = np.ones(size, dtype=bool)
            if array.dtype.kind == "f":
                finite = np.isfinite(array).reshape(size, -1)
                if not finite.all():
                    rows = finite.any(1)
                    nan_rows = np.isnan(array).reshape(size, -1).all(1)
                    bad = np.flatnonzero(~finite.all(1) & ~nan_rows)
                    if len(bad):
                        raise UserError(
                            f"modality '{m}' row {int(bad[0])}: holds NaN or infinite values; expected "
                            "finite values, or all NaN to mark the modality absent for that example"
                        )
                    rows = ~nan_rows
            if present is not None and m in present:
                rows = rows & self._mask(m, present[m], size)
            tensors[m] = torch.from_numpy(np.ascontiguousarray(array)).to(dtype)
            masks[m] = torch.from_numpy(rows)
        return tensors, masks, size

    def _array(self, modality: str, value: Any) -> np.ndarray:
        spec = self.preprocessing.inputs[modality]
        try:
            array = value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)
        except (ValueError, TypeError) as err:
            raise UserError(f"modality '{modality}': not an array ({err})") from None
        if array.dtype.kind not in NUMERIC:
            raise UserError(
                f"modality '{modality}': expected numbers ({spec.dtype}), got an array of {array.dtype}"
            )
        if array.dtype.kind == "f" and spec.dtype.startswith(("int", "uint", "bool")):
            raise UserError(f"modality '{modality}': expected {spec.dtype} values, got {array.dtype}")
        if array.shape[1:] != spec.shape or array.ndim == 0:
            expected = ", ".join(["N", *map(str, spec.shape)])
            raise UserError(f"modality '{modality}': expected shape ({expected}), got {array.shape}")
        return array

    @staticmethod
    def _mask(modality: str, value: Any, size: int) -> np.ndarray:
        mask = value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)
        if mask.dtype != np.bool_ or mask.shape != (size,):
            raise UserError(
                f"present['{modality}']: expected a bool array of shape ({size},), "
                f"got {mask.dtype} {mask.shape}"
            )
        return mask
