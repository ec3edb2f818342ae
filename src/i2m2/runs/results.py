"""Aggregate per-seed job metrics into the run's tables: results.json (the stable contract), .csv, .md.

A metric the test labels cannot define (AUROC of a one-class test split, the VQA score of an empty
subset; NaN from :mod:`i2m2.metrics`) is reported as undefined: ``null`` in results.json (its ``mean``,
``std`` and that seed's ``per_seed`` entry) with a ``note`` saying why, ``n/a`` in results.csv and
results.md, never bold and never the best of a column.
"""

from __future__ import annotations

import csv
import io
import json
import platform
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from i2m2.atomic import atomic_write_text
from i2m2.runs.verdict import run_verdicts, verdict_table

# Metrics shown as percentages in the markdown table, in this order.
TABLE_METRICS = ("acc", "balanced_acc", "auroc", "auprc")


UNDEFINED = "n/a"
# Why a metric can be undefined, by name prefix (the first that matches); the note in results.json.
UNDEFINED_REASONS = (
    ("auroc", "AUROC needs examples of a class and of another class in the test labels"),
    ("auprc", "AUPRC needs positive examples (class 1) in the test labels"),
    ("ood", "the OOD subset holds no test examples"),
    ("vqa_score", "the split holds no examples"),
    ("", "the metric is undefined on the test data (not a finite number)"),
)


def is_defined(value: Any) -> bool:
    """Whether a metric value is a finite number (``None`` and NaN are undefined)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and bool(np.isfinite(value))


def summarize(per_seed: Sequence[float | None], metric: str = "") -> dict[str, Any]:
    """Mean, std and the per-seed values; undefined (``None``, NaN, inf) seeds make mean and std ``None``
    and add a ``note`` (the analyses read NaN for ``None``, so their arithmetic stays defined-or-NaN)."""
    values = [float(v) if v is not None and is_defined(v) else None for v in per_seed]
    defined = [v for v in values if v is not None]
    if len(defined) == len(values):
        return {"mean": float(np.mean(defined)), "std": float(np.std(defined)), "per_seed": defined}
    undefined = sum(v is None for v in values)
    reason = next(text for prefix, text in UNDEFINED_REASONS if metric.startswith(prefix))
    note = f"undefined in {undefined} of {len(values)} seed(s): {reason}"
    return {"mean": None, "std": None, "per_seed": values, "note": note}


def defined_values(values: Sequence[float | None]) -> list[float]:
    """Per-seed values for arithmetic: ``None`` (undefined) as NaN."""
    return [float(v) if v is not None else float("nan") for v in values]


def build_rows(
    job_metrics: Mapping[tuple[str, str, int], Mapping[str, float]],
    methods: Sequence[str],
    groups: Sequence[str],
    job_costs: Mapping[tuple[str, str, int], Mapping[str, float]] | None = None,
) -> list[dict[str, Any]]:
    """One row per (method, group) with mean, std and per-seed values of every metric (seeds in order).

    ``job_costs`` (``wall_time_s`` and ``epochs`` of each job) adds those as row keys next to
    ``metrics`` when every seed of the row has them (jobs finished before a ``--resume`` of an older
    run may not).
    """
    costs = job_costs or {}
    rows = []
    for group in groups:
        for method in methods:
            seeds = sorted(s for (g, m, s) in job_metrics if g == group and m == method)
            if not seeds:
                continue
            names = job_metrics[(group, method, seeds[0])].keys()
            metrics = {
                n: summarize([job_metrics[(group, method, s)].get(n) for s in seeds], n) for n in names
            }
            row: dict[str, Any] = {"method": method, "group": group, "metrics": metrics}
            for cost in ("wall_time_s", "epochs"):
                values = [costs.get((group, method, s), {}).get(cost) for s in seeds]
                if all(v is not None for v in values):
                    row[cost] = summarize([float(v) for v in values if v is not None])
            rows.append(row)
    return rows


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("i2m2", "torch", "lightning", "torchmetrics", "numpy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def best_means(rows: Sequence[Mapping[str, Any]], metric: str) -> dict[str, float | None]:
    """Per group, the highest defined mean of ``metric`` (``None`` when no row of the group has one);
    an undefined mean is never the best."""
    best: dict[str, float | None] = {}
    for r in rows:
        stats = r["metrics"].get(metric)
        best.setdefault(r["group"], None)
        if stats and is_defined(stats.get("mean")):
            current = best[r["group"]]
            best[r["group"]] = stats["mean"] if current is None else max(current, stats["mean"])
    return best


def markdown_table(rows: Sequence[Mapping[str, Any]], metric: str = "acc") -> str:
    """Methods down, groups across, ``mean ± std`` in percent, the best defined mean per group in bold;
    an undefined metric reads ``n/a``, and so does the std of a single seed."""
    groups = list(dict.fromkeys(r["group"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["method"], r["group"]): r["metrics"].get(metric) for r in rows}
    best = best_means(rows, metric)
    header = "| method | " + " | ".join(g or metric for g in groups) + " |"
    lines = [header, "|" + "---|" * (len(groups) + 1)]
    for method in methods:
        cells = []
        for g in groups:
            c = cell.get((method, g))
            if not c:
                cells.append("")
                continue
            if not (is_defined(c.get("mean")) and is_defined(c.get("std"))):
                cells.append(UNDEFINED)
                continue
            text = f"{100 * c['mean']:.2f} ± {spread(c, 100, 2)}"
            cells.append(f"**{text}**" if c["mean"] == best[g] else text)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def spread(stats: Mapping[str, Any], scale: float, digits: int) -> str:
    """The std over seeds, or ``n/a`` from one seed (a spread of one value says nothing)."""
    if len(stats.get("per_seed") or []) < 2:
        return UNDEFINED
    return f"{scale * stats['std']:.{digits}f}"


def number(value: Any, digits: int = 6) -> str:
    """A value for the CSV: fixed-point, or ``n/a`` when undefined."""
    return f"{value:.{digits}f}" if is_defined(value) else UNDEFINED


def levels_text(levels: Mapping[str, Mapping[str, float]]) -> str:
    """``chance 25.0%, majority class 31.2%`` per group (the test labels' commonest class), once when
    every group has the same levels."""
    values = {(round(v["chance"], 4), round(v["majority"], 4)) for v in levels.values()}
    if len(levels) > 1 and len(values) == 1:
        v = next(iter(levels.values()))
        return (
            f"every group: chance (1/C) {100 * v['chance']:.1f}%, "
            f"majority class of the test labels {100 * v['majority']:.1f}%"
        )
    return "; ".join(
        f"{group + ': ' if group else ''}chance (1/C) {100 * v['chance']:.1f}%, "
        f"majority class of the test labels {100 * v['majority']:.1f}%"
        for group, v in levels.items()
    )


def cost_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Wall time (s) and epochs per job, mean ± std over seeds, one line per (group, method)."""
    lines = ["| method | group | wall time per job (s) | epochs |", "|---|---|---|---|"]
    for r in rows:
        t, e = r["wall_time_s"], r["epochs"]
        lines.append(
            f"| {r['method']} | {r['group']} | {t['mean']:.1f} ± {spread(t, 1, 1)} | "
            f"{e['mean']:.1f} ({', '.join(str(int(v)) for v in e['per_seed'])}) |"
        )
    return "\n".join(lines) + "\n"


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (a NaN that reached a config or a cost) as ``None``."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def write_results(
    out: Path, experiment: str, rows: list[dict[str, Any]], config: dict[str, Any]
) -> dict[str, Any]:
    """Write results.json, results.csv and results.md into ``out`` (each atomically); return the JSON.

    ``verdicts`` (:mod:`i2m2.runs.verdict`) compares the products with the best other row, and intra with
    inter, on the monitored metric from the predictions saved under ``out``."""
    verdicts = run_verdicts(out, rows, config.get("monitor", "acc"), config.get("seeds", []))
    results = {
        "experiment": experiment,
        "rows": rows,
        "verdicts": verdicts,
        "config": config,
        "versions": package_versions(),
    }
    # strict JSON: an undefined value is null (summarize), never NaN, which JSON parsers outside Python reject
    atomic_write_text(out / "results.json", json.dumps(json_safe(results), indent=2, allow_nan=False) + "\n")

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["method", "group", "metric", "mean", "std", "seeds", "per_seed", "note"])
    for row in rows:
        for name, m in row["metrics"].items():
            per_seed = " ".join(number(v) for v in m["per_seed"])
            writer.writerow(
                [
                    row["method"],
                    row["group"],
                    name,
                    number(m["mean"]),
                    number(m["std"]),
                    len(m["per_seed"]),
                    per_seed,
                    m.get("note", ""),
                ]
            )
    atomic_write_text(out / "results.csv", buffer.getvalue())

    # The monitored metric first (e.g. vqa_score or the mean AUROC over findings), then the usual ones.
    wanted = dict.fromkeys([config.get("monitor", "acc"), *TABLE_METRICS, "ood", "mixture_acc"])
    present = [m for m in wanted if m and any(m in r["metrics"] for r in rows)]
    n_seeds = len(config.get("seeds", []))
    parts = [f"# {experiment}: test metrics (%), mean ± std over {n_seeds} seed(s)\n"]
    if config.get("title"):
        parts.append(f"\n{config['title']}\n")
    levels = config.get("levels") or {}
    if levels:
        parts.append("\nReference accuracy levels: " + levels_text(levels) + "\n")
    tables = [f"\n## {metric}\n\n" + markdown_table(rows, metric) for metric in present]
    parts += tables[:1]  # the monitored metric, then whether its differences are more than noise
    if verdicts["comparisons"]:
        parts.append(
            f"\n## verdict: is the difference more than noise? ({verdicts['metric']})\n\n"
            f"Difference of the row minus the other, in points; {verdicts['method']}.\n\n"
            + verdict_table(verdicts)
        )
    parts += tables[1:]
    if rows and all("wall_time_s" in r and "epochs" in r for r in rows):
        parts.append("\n## cost per job\n\n" + cost_table(rows))
    atomic_write_text(out / "results.md", "".join(parts))
    return results
