"""Grouped bar charts in the style of the paper's Figures 2 and C.6: the run's chart and the analyses'.

Categories (regimes, tasks, question types, ...) on x, one bar per series, error bars over seeds.
Accuracy charts carry reference levels as labelled lines: chance (1/C) and the majority-class rate of
the test labels, so a bar at that height does not read as a gain.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from i2m2.atomic import atomic_write
from i2m2.runs.results import UNDEFINED, is_defined

# label -> one value per category (in the chart's units); drawn as a line across each category.
References = Mapping[str, Sequence[float]]
CHANCE = "chance (1/C)"
MAJORITY = "majority class (test labels)"
AUROC_CHANCE = "chance (AUROC 0.5)"
_REFERENCE_STYLE = {CHANCE: ("black", "--"), AUROC_CHANCE: ("black", "--"), MAJORITY: ("dimgray", ":")}


def bar_chart(
    rows: Sequence[Mapping[str, Any]],
    path: Path,
    metric: str = "acc",
    title: str = "",
    levels: Mapping[str, Mapping[str, float]] | None = None,
) -> None:
    """Bars of ``metric`` (mean ± std over seeds, in %) per method, grouped by regime/task; atomic PNG.

    Args:
        levels: per group, ``{"chance": 1/C, "majority": share of the commonest test label}`` (fractions);
            drawn as reference lines when ``metric`` is an accuracy.
    """
    groups = list(dict.fromkeys(r["group"] for r in rows))
    series, undefined = bar_values(rows, metric, groups)
    seeds = max((len(s.get("per_seed") or []) for r in rows if (s := r["metrics"].get(metric))), default=0)
    spread = error_bars(seeds)
    png = grouped_bars(
        [g or metric for g in groups],
        series,
        f"test {metric} (%), {spread}",
        title,
        references=metric_references(metric, levels or {}, groups),
        undefined=undefined,
        colors={method: method_color(method) for method in series},
        zoom=True,
    )
    atomic_write(path, lambda f: f.write(png))


# One colour per method in every chart of the project: the paper's methods keep theirs, unimodal experts
# and further fusions take the next ones in a fixed order.
METHOD_COLORS = {"intra": "tab:blue", "inter": "tab:orange", "i2m2": "tab:green"}
OTHER_COLORS = ("tab:gray", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:purple", "tab:red")


def error_bars(seeds: int) -> str:
    """What a chart's error bars are, for its axis label."""
    return f"mean ± std over {seeds} seeds" if seeds > 1 else "1 seed: no error bars"


def method_color(method: str) -> str:
    """The colour of a method's bars: fixed by its name, the same in every chart."""
    from zlib import crc32

    from i2m2.models.methods import method_base, row_fusion

    base = method_base(method.lower())
    if base in METHOD_COLORS and row_fusion(method) is None:
        return METHOD_COLORS[base]
    return OTHER_COLORS[crc32(method.encode()) % len(OTHER_COLORS)]


def metric_references(
    metric: str, levels: Mapping[str, Mapping[str, float]], groups: Sequence[str]
) -> References:
    """The chance line of a metric: 1/C (and the majority class) for accuracy, 1/C for balanced accuracy,
    0.5 for AUROC."""
    if metric in ("acc", "accuracy"):
        return accuracy_references(levels, groups)
    if metric == "balanced_acc":
        chance = accuracy_references(levels, groups).get(CHANCE)
        return {CHANCE: chance} if chance else {}
    if "auroc" in metric:
        return {AUROC_CHANCE: [50.0] * len(groups)}
    return {}


def bar_values(
    rows: Sequence[Mapping[str, Any]], metric: str, groups: Sequence[str]
) -> tuple[dict[str, tuple[list[float], list[float]]], dict[str, list[bool]]]:
    """Per method, the bars' means and stds in % (NaN: no bar), and which bars are undefined metrics.

    A method not run in a group leaves a plain gap; a metric the test labels cannot define (``null``
    in results.json) leaves a gap marked "n/a", never a bar of height 0.
    """
    series, undefined = {}, {}
    for method in dict.fromkeys(r["method"] for r in rows):
        stats = [
            next((r["metrics"].get(metric) for r in rows if r["method"] == method and r["group"] == g), None)
            for g in groups
        ]
        defined = [s is not None and is_defined(s.get("mean")) and is_defined(s.get("std")) for s in stats]
        series[method] = (
            [100 * s["mean"] if s and ok else np.nan for s, ok in zip(stats, defined, strict=True)],
            [100 * s["std"] if s and ok else 0.0 for s, ok in zip(stats, defined, strict=True)],
        )
        undefined[method] = [bool(s) and not ok for s, ok in zip(stats, defined, strict=True)]
    return series, undefined


def accuracy_references(levels: Mapping[str, Mapping[str, float]], categories: Sequence[str]) -> References:
    """Chance and majority lines (in %) for categories keyed like ``levels``; none when any is unknown."""
    if not categories or any(c not in levels for c in categories):
        return {}
    return {
        label: [100 * float(levels[c][key]) for c in categories]
        for label, key in ((CHANCE, "chance"), (MAJORITY, "majority"))
        if all(key in levels[c] for c in categories)
    }


def grouped_bars(
    categories: Sequence[str],
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    ylabel: str,
    title: str = "",
    hline: tuple[float, str] | None = None,
    references: References | None = None,
    undefined: Mapping[str, Sequence[bool]] | None = None,
    colors: Mapping[str, str] | None = None,
    zoom: bool = False,
) -> bytes:
    """PNG bytes of bars ``series[label] = (means, stds)`` (one value per category), error bars = std.

    Args:
        categories: the x-axis groups.
        series: label -> per-category means and standard deviations (NaN leaves a gap).
        ylabel: the y-axis label.
        title: the chart title (wrapped to the figure's width, never cut off).
        hline: an optional reference line ``(value, label)``, e.g. the label entropy.
        references: label -> one level per category (e.g. chance and majority accuracy), each drawn
            as a labelled line; one straight line when the level is the same everywhere.
        undefined: label -> per category, whether the value is undefined (its gap is marked "n/a").
        colors: label -> bar colour (default: :func:`method_color`, the same in every chart).
        zoom: start the y-axis just below the lowest bar or reference line instead of at 0, so
            differences of a few points show (the axis says where it starts).
    """
    width = 0.8 / max(len(series), 1)
    longest = max((len(line) for c in categories for line in c.splitlines()), default=1)
    per_category = max(0.5 * len(series), 0.09 * longest)  # room for the bars and for the tick label
    fig_width = max(6.0, per_category * len(categories) + 2)
    fig, ax = plt.subplots(figsize=(fig_width, 4.4), layout="constrained")
    x = np.arange(len(categories))
    for i, (label, (means, stds)) in enumerate(series.items()):
        offset = (i - (len(series) - 1) / 2) * width
        color = (colors or {}).get(label) or method_color(label)  # the same colour in every chart
        ax.bar(x + offset, means, width, yerr=stds, capsize=2, label=label, color=color)
        for j, flagged in enumerate((undefined or {}).get(label, ())):
            if flagged:  # an undefined metric: a marked gap, not a bar of height 0
                ax.text(
                    x[j] + offset, 0, UNDEFINED, ha="center", va="bottom", rotation=90, fontsize="x-small"
                )
    if hline is not None:
        ax.axhline(hline[0], color="black", linestyle="--", linewidth=1, label=hline[1])
    for label, values in (references or {}).items():
        color, style = _REFERENCE_STYLE.get(label, ("gray", "-."))
        if len(values) and np.allclose(values, values[0]):
            ax.axhline(values[0], color=color, linestyle=style, linewidth=1.2, label=label)
        else:
            ax.hlines(values, x - 0.45, x + 0.45, colors=color, linestyles=style, linewidth=1.2, label=label)  # type: ignore[arg-type]
    if zoom:
        _zoom(ax, series, references or {})
    ax.set_xticks(x, list(categories))
    ax.set_ylabel(ylabel)
    ax.set_title(wrap_title(title, fig_width), fontsize="medium")
    entries = len(series) + (hline is not None) + len(references or {})
    fig.legend(fontsize="small", ncol=min(entries, 4), loc="outside lower center")
    ax.grid(axis="y", alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return buffer.getvalue()


def _zoom(
    ax: Any, series: Mapping[str, tuple[Sequence[float], Sequence[float]]], references: References
) -> None:
    """The y-axis from a little below the lowest bar (or reference line, kept in view) instead of 0."""
    lows = [m - sd for means, stds in series.values() for m, sd in zip(means, stds, strict=True) if m == m]
    lows += [v for values in references.values() for v in values]
    if lows:
        bottom = max(0.0, min(lows) - 5.0)
        ax.set_ylim(bottom=5.0 * np.floor(bottom / 5.0))


def wrap_title(title: str, fig_width: float) -> str:
    """The title broken into lines that fit a figure ``fig_width`` inches wide (medium font)."""
    return "\n".join(textwrap.fill(line, max(30, int(fig_width * 11))) for line in title.splitlines())
