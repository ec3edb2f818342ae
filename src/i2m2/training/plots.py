"""The run's bar chart: one bar per method, grouped by regime/task, error bars over seeds."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from i2m2.training.atomic import atomic_write


def bar_chart(rows: Sequence[Mapping[str, Any]], path: Path, metric: str = "acc", title: str = "") -> None:
    """Grouped bars of ``metric`` (mean ± std over seeds), written atomically as a PNG."""
    groups = list(dict.fromkeys(r["group"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(groups) * len(methods) * 0.45 + 2), 4))
    x = np.arange(len(groups))
    for i, method in enumerate(methods):
        stats = [
            next((r["metrics"].get(metric) for r in rows if r["method"] == method and r["group"] == g), None)
            for g in groups
        ]
        means = [100 * s["mean"] if s else np.nan for s in stats]
        stds = [100 * s["std"] if s else 0.0 for s in stats]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, means, width, yerr=stds, capsize=2, label=method)
    ax.set_xticks(x, [g or metric for g in groups])
    ax.set_ylabel(f"test {metric} (%)")
    ax.set_title(title)
    ax.legend(fontsize="small", ncol=min(len(methods), 4), loc="upper center", bbox_to_anchor=(0.5, -0.12))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
