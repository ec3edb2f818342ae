"""Grouped bar charts in the style of the paper's Figures 2 and C.6: the run's chart and the analyses'.

Categories (regimes, tasks, question types, ...) on x, one bar per series, error bars over seeds.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from i2m2.atomic import atomic_write


def bar_chart(rows: Sequence[Mapping[str, Any]], path: Path, metric: str = "acc", title: str = "") -> None:
    """Bars of ``metric`` (mean ± std over seeds, in %) per method, grouped by regime/task; atomic PNG."""
    groups = list(dict.fromkeys(r["group"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    series = {}
    for method in methods:
        stats = [
            next((r["metrics"].get(metric) for r in rows if r["method"] == method and r["group"] == g), None)
            for g in groups
        ]
        series[method] = (
            [100 * s["mean"] if s else np.nan for s in stats],
            [100 * s["std"] if s else 0.0 for s in stats],
        )
    png = grouped_bars([g or metric for g in groups], series, f"test {metric} (%)", title)
    atomic_write(path, lambda f: f.write(png))


def grouped_bars(
    categories: Sequence[str],
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    ylabel: str,
    title: str = "",
    hline: tuple[float, str] | None = None,
) -> bytes:
    """PNG bytes of bars ``series[label] = (means, stds)`` (one value per category), error bars = std.

    Args:
        categories: the x-axis groups.
        series: label -> per-category means and standard deviations (NaN leaves a gap).
        ylabel: the y-axis label.
        title: the chart title.
        hline: an optional reference line ``(value, label)``, e.g. the label entropy.
    """
    width = 0.8 / max(len(series), 1)
    lines = max((c.count("\n") + 1 for c in categories), default=1)
    longest = max((len(line) for c in categories for line in c.splitlines()), default=1)
    per_category = max(0.5 * len(series), 0.09 * longest)  # room for the bars and for the tick label
    fig, ax = plt.subplots(figsize=(max(6.0, per_category * len(categories) + 2), 4))
    x = np.arange(len(categories))
    for i, (label, (means, stds)) in enumerate(series.items()):
        offset = (i - (len(series) - 1) / 2) * width
        ax.bar(x + offset, means, width, yerr=stds, capsize=2, label=label)
    if hline is not None:
        ax.axhline(hline[0], color="black", linestyle="--", linewidth=1, label=hline[1])
    ax.set_xticks(x, list(categories))
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize="medium")
    ax.legend(
        fontsize="small",
        ncol=min(len(series) + 1, 4),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12 - 0.07 * (lines - 1)),
    )
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return buffer.getvalue()
