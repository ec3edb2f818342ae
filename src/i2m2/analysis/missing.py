"""Missing modalities at test time: a product with one modality withheld, against the unimodal model.

Withholding a modality leaves its experts out of the product (the runner saves these predictions as
``withheld__<modality>``). With two modalities, what remains of I2M2 is the other modality's expert,
so the fair comparison is that modality's own model (row ``unimodal:<other>``): a product that falls
far below it has leaned on the missing modality; one close to it degrades gracefully.
"""

from __future__ import annotations

from i2m2.analysis.artifacts import Artifact, SeedStat, csv_artifact, markdown_table, pm
from i2m2.analysis.groups import accuracy
from i2m2.analysis.run_data import UNIMODAL_PREFIX, RunData, method_base
from i2m2.runs.plots import grouped_bars

FULL = "all modalities"


def missing_stats(run: RunData) -> list[tuple[SeedStat, SeedStat | None]]:
    """(product with ``name`` withheld, matching unimodal model or None) per group, product row, modality."""
    pairs: list[tuple[SeedStat, SeedStat | None]] = []
    for group in run.groups:
        for method in run.methods:
            if method_base(method) not in ("i2m2", "intra") or not run.has(group, method):
                continue
            per_seed = run.per_seed(group, method)
            withheld = [m for m in per_seed[0].withheld if all(m in p.withheld for p in per_seed)]
            if not withheld:
                continue
            pairs.append(
                (SeedStat(group, method, FULL, [accuracy(p.log_probs, p.labels) for p in per_seed]), None)
            )
            for modality in withheld:
                acc = [accuracy(p.withheld[modality], p.labels) for p in per_seed]
                remaining = [m for m in run.modalities if m != modality]
                unimodal = UNIMODAL_PREFIX + remaining[0] if len(remaining) == 1 else ""
                reference = None
                if unimodal and run.has(group, unimodal):
                    values = [accuracy(p.log_probs, p.labels) for p in run.per_seed(group, unimodal)]
                    reference = SeedStat(group, unimodal, modality, values)
                pairs.append((SeedStat(group, method, modality, acc), reference))
    return pairs


def missing_analysis(run: RunData) -> list[Artifact]:
    """missing.csv, missing.md and missing.png; nothing without withheld-modality predictions."""
    pairs = missing_stats(run)
    if not pairs:
        return []
    header = ["group", "method", "withheld", "mean_acc", "std_acc", "unimodal_method", "unimodal_mean_acc"]
    header.append("unimodal_std_acc")
    rows = []
    for product, ref in pairs:
        rows.append(
            [product.group, product.method, product.name, product.mean, product.std]
            + ([ref.method, ref.mean, ref.std] if ref else ["", "", ""])
        )
    grouped = any(p.group for p, _ in pairs)  # a "group" column only when the run has groups
    md_rows = [
        [p.group] * grouped
        + [p.method, "none" if p.name == FULL else p.name, pm(p.per_seed, 100)]
        + ([ref.method, pm(ref.per_seed, 100)] if ref else ["", ""])
        for p, ref in pairs
    ]
    columns = ["group"] * grouped + [
        "method",
        "withheld",
        "accuracy (%)",
        "unimodal model",
        "its accuracy (%)",
    ]
    md = (
        f"# {run.experiment}: test accuracy (%) with one modality withheld, mean ± std over "
        f"{len(run.seeds)} seed(s)\n\nThe withheld modality's experts are left out of the product; the "
        "unimodal model of the remaining modality is the reference.\n\n" + markdown_table(columns, md_rows)
    )
    categories = [f"{p.group + ' ' if p.group else ''}{p.method}\nwithout {p.name}" for p, r in pairs if r]
    series = {
        "product, modality withheld": (
            [100 * p.mean for p, r in pairs if r],
            [100 * p.std for p, r in pairs if r],
        ),
        "unimodal model of the rest": (
            [100 * r.mean for _, r in pairs if r],
            [100 * r.std for _, r in pairs if r],
        ),
    }
    artifacts = [csv_artifact("missing.csv", header, rows), Artifact("missing.md", md.encode())]
    if categories:
        title = f"{run.experiment}: a modality missing at test time"
        artifacts.append(
            Artifact("missing.png", grouped_bars(categories, series, "test accuracy (%)", title))
        )
    return artifacts
