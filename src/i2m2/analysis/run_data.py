"""A finished run read back for analysis: results.json plus every per-example predictions file, validated.

Everything is read and checked before any analysis writes a file, so bad input changes nothing.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from i2m2.errors import DataError
from i2m2.models.methods import UNIMODAL_PREFIX, inter_row_of, method_base
from i2m2.runs.predictions import PREDICTIONS_DIR, Predictions, load_predictions, predictions_path


@dataclass
class RunData:
    """One run: its settings and test predictions keyed by ``(group, method, seed)``."""

    path: Path
    experiment: str
    modalities: tuple[str, ...]
    seeds: list[int]
    groups: list[str]
    methods: list[str]
    group_names: list[str]
    monitor: str
    rows: list[dict[str, Any]]
    predictions: dict[tuple[str, str, int], Predictions]
    config: dict[str, Any] = field(default_factory=dict)  # results.json's config, as written by the run

    def has(self, group: str, method: str) -> bool:
        return all((group, method, s) in self.predictions for s in self.seeds)

    def per_seed(self, group: str, method: str) -> list[Predictions]:
        """The method's predictions for each seed, in seed order."""
        return [self.predictions[(group, method, s)] for s in self.seeds]

    def i2m2_methods(self, group: str) -> list[str]:
        """Rows of the I2M2 model (``i2m2`` or ``i2m2[<fusion>]``) present in this group."""
        return [m for m in self.methods if method_base(m) == "i2m2" and self.has(group, m)]

    def source(self) -> str:
        """Where the run's data came from and its seeds, for chart titles: ``data: X, 3 seeds``."""
        data_dir = self.config.get("data_dir")
        data = f"data: {Path(str(data_dir)).name}, " if data_dir else ""
        return f"{data}{len(self.seeds)} seed{'s' if len(self.seeds) != 1 else ''}"

    def group_name(self, group_id: int) -> str:
        names = self.group_names
        return names[group_id] if 0 <= group_id < len(names) else f"group {group_id}"


def load_run(run_dir: Path) -> RunData:
    """Read ``results.json`` and all predictions of a run; a :class:`DataError` naming what is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: no such folder (expected a run folder written by 'i2m2 run')")
    results_path = run_dir / "results.json"
    if not results_path.is_file():
        raise DataError(f"{run_dir}: not a run folder (no results.json; expected one written by 'i2m2 run')")
    try:
        results = json.loads(results_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{results_path}: not readable JSON ({err})") from err
    rows, config = _field(results, "rows", list, results_path), _field(results, "config", dict, results_path)
    seeds = [int(s) for s in _field(config, "seeds", list, results_path)]
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("method"), str):
            raise DataError(f"{results_path}: every row needs a 'method' (got {row!r:.80})")
    methods = list(dict.fromkeys(str(r["method"]) for r in rows))
    groups = list(dict.fromkeys(str(r.get("group", "")) for r in rows))
    predictions_dir = run_dir / PREDICTIONS_DIR
    if not predictions_dir.is_dir() or not any(predictions_dir.glob("*.npz")):
        raise DataError(
            f"{predictions_dir}: no saved test predictions (the run has no predictions/*.npz to analyze)"
        )
    predictions: dict[tuple[str, str, int], Predictions] = {}
    for row in rows:
        group = str(row.get("group", ""))
        for seed in seeds:
            path = predictions_path(run_dir, group, row["method"], seed)
            predictions[(group, row["method"], seed)] = _load(path)
    modalities = tuple(str(m) for m in config.get("modalities", []))
    for group in groups:  # stage-1 jobs that ran for a product without being rows (--methods i2m2)
        i2m2_rows = [m for m in methods if method_base(m) == "i2m2"]
        for method in [UNIMODAL_PREFIX + m for m in modalities] + [inter_row_of(m) for m in i2m2_rows]:
            paths = [predictions_path(run_dir, group, method, s) for s in seeds]
            if method not in methods and all(p.is_file() for p in paths):
                predictions |= {(group, method, s): _load(p) for s, p in zip(seeds, paths, strict=True)}
    _check_same_test_set(run_dir, predictions)
    return RunData(
        path=run_dir,
        experiment=str(results.get("experiment", run_dir.name)),
        modalities=modalities,
        seeds=seeds,
        groups=groups,
        methods=methods,
        group_names=[str(n) for n in config.get("group_names", [])],
        monitor=str(config.get("monitor", "acc")),
        rows=rows,
        predictions=predictions,
        config=config,
    )


def _field(container: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    if not isinstance(container, dict) or not isinstance(container.get(key), kind):
        raise DataError(f"{path}: expected a '{key}' {kind.__name__} (is this a results.json of 'i2m2 run'?)")
    return container[key]


def _load(path: Path) -> Predictions:
    """One predictions file, with the checks analysis relies on (shapes, label range, no NaN)."""
    try:
        p = load_predictions(path)
    except DataError:
        raise
    except (zlib.error, KeyError, RuntimeError) as err:  # damage inside a member of the archive
        raise DataError(f"{path}: not a readable predictions file ({err})") from err
    if p.log_probs.ndim != 2 or p.labels.ndim != 1:
        raise DataError(
            f"{path}: expected labels (N,) and log_probs (N, C), got {p.labels.shape} and {p.log_probs.shape}"
        )
    classes = p.log_probs.shape[1]
    if len(p.labels) == 0:
        raise DataError(f"{path}: no test examples")
    if p.labels.min() < 0 or p.labels.max() >= classes:
        raise DataError(f"{path}: labels outside 0..{classes - 1}")
    for name, array in {"log_probs": p.log_probs, **p.experts, **p.withheld}.items():
        if array.shape != p.log_probs.shape:
            raise DataError(f"{path}: '{name}' has shape {array.shape}, expected {p.log_probs.shape}")
        if np.isnan(array).any() or (array > 0.01).any():  # log-probabilities are <= 0 (float16 rounding)
            raise DataError(f"{path}: '{name}' holds NaN or values above 0 (expected log-probabilities)")
    return p


def _check_same_test_set(run_dir: Path, predictions: dict[tuple[str, str, int], Predictions]) -> None:
    """Files of one (group, seed) must describe the same test examples, or comparing them is meaningless."""
    first: dict[tuple[str, int], tuple[str, np.ndarray]] = {}
    for (group, method, seed), p in predictions.items():
        key = (group, seed)
        if key not in first:
            first[key] = (method, p.labels)
            continue
        other, labels = first[key]
        if len(labels) != len(p.labels) or not np.array_equal(labels, p.labels):
            raise DataError(
                f"{predictions_path(run_dir, group, method, seed)}: its test labels differ from those of "
                f"method '{other}' (same group and seed); the files do not come from one run"
            )
