"""Paper Table 3 (VQA-VS: IID and OOD) and Figure C.6 (VQA score on each of the nine OOD subsets).

Read from results.json: a VQA-VS run scores every OOD subset in the same test pass and records
``vqa_score`` (IID), ``ood_<subset>`` and ``ood`` (the mean over the nine) per job, so no prediction
needs re-scoring. Runs without ``ood_*`` metrics get nothing from this analysis.
"""

from __future__ import annotations

from typing import Any

from i2m2.analysis.artifacts import Artifact, csv_artifact, file_suffix, markdown_table, per_seed_text
from i2m2.analysis.run_data import RunData
from i2m2.runs.plots import error_bars, grouped_bars
from i2m2.runs.results import UNDEFINED

PREFIX = "ood_"


def subset_names(rows: list[dict[str, Any]]) -> list[str]:
    """The OOD subsets scored in the run, in the order of its metrics."""
    names = [k for r in rows for k in r.get("metrics", {}) if k.startswith(PREFIX)]
    return [n.removeprefix(PREFIX) for n in dict.fromkeys(names)]


def ood_splits_analysis(run: RunData) -> list[Artifact]:
    """ood_splits.csv, ood_splits.md (Table 3's IID/OOD and every subset) and ood_splits*.png (C.6)."""
    subsets = subset_names(run.rows)
    if not subsets:
        return []
    header = ["group", "method", "split", "mean", "std", "per_seed"]
    csv_rows: list[list[Any]] = []
    md = [
        f"# {run.experiment}: VQA score (%) on the IID test split and the OOD subsets "
        f"(paper Table 3, Figure C.6), mean ± std over {len(run.seeds)} seed(s)\n\n"
        "OOD is the mean over the nine subsets, every subset scored in the same run.\n"
    ]
    artifacts = []
    for group in run.groups:
        rows = [r for r in run.rows if str(r.get("group", "")) == group]
        columns = [("IID", "vqa_score"), ("OOD", "ood")] + [(s, PREFIX + s) for s in subsets]
        table = []
        for row in rows:
            cells = [row["method"]]
            for name, key in columns:
                stat = row["metrics"].get(key)
                cells.append(_pm(stat))
                if stat is not None:
                    csv_rows.append([group, row["method"], name, stat["mean"], stat["std"], _seeds(stat)])
            table.append(cells)
        heading = f"\n## {group}\n\n" if group else "\n"
        md.append(heading + markdown_table(["method", *[c for c, _ in columns]], table))
        chart = list(subsets)  # Figure C.6: the nine subsets
        series = {
            row["method"]: (
                [100 * _get(row, PREFIX + s, "mean") for s in chart],
                [100 * _get(row, PREFIX + s, "std") for s in chart],
            )
            for row in rows
        }
        ylabel = f"VQA score (%)\n{error_bars(len(run.seeds))}"
        png = grouped_bars(chart, series, ylabel, f"{run.experiment}: VQA score per OOD test subset")
        artifacts.append(Artifact(f"ood_splits{file_suffix(len(run.groups), group)}.png", png))
    artifacts.append(csv_artifact("ood_splits.csv", header, csv_rows))
    artifacts.append(Artifact("ood_splits.md", "".join(md).encode()))
    return artifacts


def _get(row: dict[str, Any], key: str, field: str) -> float:
    """A metric's mean or std; NaN when the row lacks it or results.json reports it undefined (null)."""
    stat = row["metrics"].get(key)
    return float(stat[field]) if stat and stat.get(field) is not None else float("nan")


def _pm(stat: dict[str, Any] | None) -> str:
    if stat is None:
        return ""
    if stat.get("mean") is None or stat.get("std") is None:
        return UNDEFINED  # an empty subset: results.json says null, with a note
    return f"{100 * stat['mean']:.2f} ± {100 * stat['std']:.2f}"


def _seeds(stat: dict[str, Any]) -> str:
    return per_seed_text([None if v is None else float(v) for v in stat.get("per_seed", [])])
