"""Aggregate per-seed job metrics into the run's tables: results.json (the stable contract), .csv, .md."""

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

# Metrics shown as percentages in the markdown table, in this order.
TABLE_METRICS = ("acc", "balanced_acc", "auroc", "auprc")


def summarize(per_seed: Sequence[float]) -> dict[str, Any]:
    values = [float(v) for v in per_seed]
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "per_seed": values}


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
            metrics = {n: summarize([job_metrics[(group, method, s)][n] for s in seeds]) for n in names}
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


def markdown_table(rows: Sequence[Mapping[str, Any]], metric: str = "acc") -> str:
    """Methods down, groups across, ``mean ± std`` in percent, the best mean per group in bold."""
    groups = list(dict.fromkeys(r["group"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["method"], r["group"]): r["metrics"].get(metric) for r in rows}
    best = {g: max((c["mean"] for (m, gg), c in cell.items() if gg == g and c), default=None) for g in groups}
    header = "| method | " + " | ".join(g or metric for g in groups) + " |"
    lines = [header, "|" + "---|" * (len(groups) + 1)]
    for method in methods:
        cells = []
        for g in groups:
            c = cell.get((method, g))
            if not c:
                cells.append("")
                continue
            text = f"{100 * c['mean']:.2f} ± {100 * c['std']:.2f}"
            cells.append(f"**{text}**" if c["mean"] == best[g] else text)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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
            f"| {r['method']} | {r['group']} | {t['mean']:.1f} ± {t['std']:.1f} | "
            f"{e['mean']:.1f} ({', '.join(str(int(v)) for v in e['per_seed'])}) |"
        )
    return "\n".join(lines) + "\n"


def write_results(
    out: Path, experiment: str, rows: list[dict[str, Any]], config: dict[str, Any]
) -> dict[str, Any]:
    """Write results.json, results.csv and results.md into ``out`` (each atomically); return the JSON."""
    results = {"experiment": experiment, "rows": rows, "config": config, "versions": package_versions()}
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["method", "group", "metric", "mean", "std", "seeds", "per_seed"])
    for row in rows:
        for name, m in row["metrics"].items():
            per_seed = " ".join(f"{v:.6f}" for v in m["per_seed"])
            writer.writerow(
                [
                    row["method"],
                    row["group"],
                    name,
                    f"{m['mean']:.6f}",
                    f"{m['std']:.6f}",
                    len(m["per_seed"]),
                    per_seed,
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
    parts += [f"\n## {metric}\n\n" + markdown_table(rows, metric) for metric in present]
    if rows and all("wall_time_s" in r and "epochs" in r for r in rows):
        parts.append("\n## cost per job\n\n" + cost_table(rows))
    atomic_write_text(out / "results.md", "".join(parts))
    return results
