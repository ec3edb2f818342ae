"""Grouped bar charts in the style of the paper's Figures 2 and C.6: categories on x, one bar per series."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


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
