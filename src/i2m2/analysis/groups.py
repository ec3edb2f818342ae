"""Per-group accuracy as grouped bars, in the style of the paper's Figures 2 and C.6.

Two kinds of groups: the run's own groups (regimes, tasks, OOD splits: rows of results.json with
different ``group``), and per-example groups saved with the predictions (e.g. easy-VQA's question
types, named by ``config.group_names``). Accuracy is recomputed from the saved predictions (argmax),
so every bar uses the same definition.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from i2m2.analysis.artifacts import (
    Artifact,
    SeedStat,
    csv_artifact,
    file_suffix,
    markdown_table,
    per_seed_text,
    pm,
)
from i2m2.analysis.run_data import RunData
from i2m2.runs.plots import CHANCE, MAJORITY, error_bars, grouped_bars

ALL = "all"


def accuracy(log_probs: np.ndarray, labels: np.ndarray) -> float:
    return float((log_probs.argmax(axis=1) == labels).mean())


def example_group_stats(run: RunData, group: str) -> list[SeedStat]:
    """Accuracy of every method on each per-example group (``SeedStat.name``), plus ``all``."""
    methods = [m for m in run.methods if run.has(group, m)]
    ids = sorted(
        {
            int(i)
            for m in methods
            for p in run.per_seed(group, m)
            if p.groups is not None
            for i in _group_ids(np.asarray(p.groups))
        }
    )
    if not ids:
        return []
    stats = []
    for method in methods:
        per_seed = run.per_seed(group, method)
        if any(p.groups is None for p in per_seed):
            continue
        stats.append(SeedStat(group, method, ALL, [accuracy(p.log_probs, p.labels) for p in per_seed]))
        for i in ids:
            values = [_accuracy_where(p.log_probs, p.labels, members(p.groups, i)) for p in per_seed]
            stats.append(SeedStat(group, method, run.group_name(i), values))
    return stats


def members(groups: np.ndarray | None, group_id: int) -> np.ndarray:
    """Rows in group ``group_id``: ids ``(N,)`` equal to it, or column ``group_id`` of a ``(N, G)``
    membership matrix (an example may be in several groups, e.g. VQA-VS's OOD subsets)."""
    groups = np.asarray(groups)
    if groups.ndim == 2:
        return groups[:, group_id].astype(bool) if group_id < groups.shape[1] else np.zeros(len(groups), bool)
    return groups == group_id


def _group_ids(groups: np.ndarray) -> list[int]:
    return list(range(groups.shape[1])) if groups.ndim == 2 else [int(i) for i in np.unique(groups)]


def run_group_stats(run: RunData) -> list[SeedStat]:
    """Accuracy of every method on each of the run's groups (only when it has more than one)."""
    if len(run.groups) < 2:
        return []
    return [
        SeedStat(group, method, ALL, [accuracy(p.log_probs, p.labels) for p in run.per_seed(group, method)])
        for group in run.groups
        for method in run.methods
        if run.has(group, method)
    ]


def groups_analysis(run: RunData) -> list[Artifact]:
    """groups.csv, groups.md and groups*.png; nothing when the run has no groups of either kind."""
    across = run_group_stats(run)
    within = {g: example_group_stats(run, g) for g in run.groups}
    sections: list[tuple[str, str, list[SeedStat], Callable[[SeedStat], str]]] = []
    if across:
        sections.append(("run groups", "runs", across, lambda s: s.group))
    for group, stats in within.items():
        if stats:
            heading = f"per-example groups of {group}" if group else "per-example groups"
            sections.append((heading, group, stats, lambda s: s.name))
    if not sections:
        return []
    header = ["group", "example_group", "method", "mean_acc", "std_acc", "per_seed"]
    rows = [
        [s.group, s.name, s.method, s.mean, s.std, per_seed_text(s.per_seed)] for x in sections for s in x[2]
    ]
    artifacts = [csv_artifact("groups.csv", header, rows)]
    md = [
        f"# {run.experiment}: test accuracy (%) per group, mean ± std over {len(run.seeds)} seed(s)\n\n"
        "Run groups are the run's regimes/tasks; per-example groups are saved with the predictions "
        "(e.g. question types). Accuracy is the argmax of the saved test predictions.\n"
    ]
    for heading, key, stats, category in sections:
        categories = list(dict.fromkeys(category(s) or ALL for s in stats))
        methods = list(dict.fromkeys(s.method for s in stats))
        cell = {(s.method, category(s) or ALL): s for s in stats}
        table = [
            [m, *[pm(cell[(m, c)].per_seed, 100) if (m, c) in cell else "" for c in categories]]
            for m in methods
        ]
        md.append(f"\n## {heading}\n\n" + markdown_table(["method", *categories], table))
        series = {
            m: (
                [100 * cell[(m, c)].mean if (m, c) in cell else np.nan for c in categories],
                [100 * cell[(m, c)].std if (m, c) in cell else 0.0 for c in categories],
            )
            for m in methods
        }
        references = reference_levels(run, key if key != "runs" else None, categories)
        png = grouped_bars(
            categories,
            series,
            f"test accuracy (%)\n{error_bars(len(run.seeds))}",
            f"{run.experiment}: accuracy, {heading}",
            references=references,
            zoom=True,
        )
        artifacts.append(Artifact(f"groups{file_suffix(len(sections), key)}.png", png))
    artifacts.append(Artifact("groups.md", "".join(md).encode()))
    return artifacts


def reference_levels(run: RunData, group: str | None, categories: list[str]) -> dict[str, list[float]]:
    """Chance (1/C) and the majority-class rate of each category's test examples, in %.

    ``group`` None: the categories are the run's groups; otherwise they are per-example groups (and
    ``all``) of that run group. Read from any method's first seed: every method sees the same test set.
    """
    chance, majority = [], []
    for category in categories:
        run_group = category if group is None else group
        found = [run.per_seed(run_group, m)[0] for m in run.methods if run.has(run_group, m)]
        found = [p for p in found if group is None or p.groups is not None]
        if not found:
            return {}
        first = found[0]
        rows = np.ones(len(first.labels), bool)
        if group is not None and category != ALL:
            ids = [i for i in _group_ids(np.asarray(first.groups)) if run.group_name(i) == category]
            rows = members(first.groups, ids[0]) if ids else np.zeros(len(first.labels), bool)
        labels = first.labels[rows]
        if not len(labels) or labels.ndim != 1:
            return {}
        chance.append(100.0 / first.log_probs.shape[-1])
        majority.append(100.0 * np.bincount(labels.astype(np.int64)).max() / len(labels))
    return {CHANCE: chance, MAJORITY: majority}


def _accuracy_where(log_probs: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> float:
    return accuracy(log_probs[rows], labels[rows]) if rows.any() else float("nan")
