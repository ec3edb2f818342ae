"""Missing modalities at test time: the products with any subset of modalities withheld.

Withholding modalities leaves out of the product every expert that reads one of them, so the accuracy of
I2M2 (and of intra and inter) with a subset ``S`` withheld follows from the saved per-expert
log-probabilities (``expert__<name>``) alone: ``log_softmax(sum of the kept experts)``, and with the
run's prior correction ``log_softmax(sum - (K' - 1) log p(y))`` for the K' kept experts, using the
training prior the run saved (``config.log_priors``). Every subset of each size is evaluated when there
are at most 20 of that size (all 62 of six modalities; all 15 pairs), else a seeded sample of 20
(:func:`~i2m2.models.subsets.withheld_subsets`).

An expert that handles missing modalities itself (the null-token fusions) gives ``p(y | x_S)`` for any
subset directly, but only when asked again: the run does that for every one of those subsets and saves the
method's prediction (``withheld__a+b``), which is used as is. A run made before it saved only single
modalities: larger subsets are then reported as not derivable, with the reason. A product with no expert
left is reported as such (it would predict the prior).

Charts: per number withheld, bars per subset; with more than :data:`HEATMAP_ABOVE` subsets (the 15 pairs
of six views), a heatmap of method x subset instead, every cell annotated.

Each product is compared with the matching smaller model when the run has one: withholding all but
``m`` against ``unimodal:m``. Otherwise the table says which model would be needed. Tables and charts
give chance (1/C) and the majority-class rate of the test labels, so an accuracy at that level does not
read as a gain.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np

from i2m2.analysis.artifacts import Artifact, SeedStat, csv_artifact, file_suffix, markdown_table, pm
from i2m2.analysis.groups import accuracy
from i2m2.analysis.run_data import RunData
from i2m2.models.i2m2 import INTER
from i2m2.models.methods import UNIMODAL_PREFIX, method_base
from i2m2.models.subsets import MAX_PER_SIZE, SAMPLE_SEED, withheld_subsets
from i2m2.runs.plots import CHANCE, MAJORITY, error_bars, grouped_bars, wrap_title

FULL = "all modalities"
HEATMAP_ABOVE = 8  # subsets of one size; more are drawn as a heatmap rather than bars
REFERENCE = "matching unimodal model"

__all__ = ["withheld_subsets"]  # re-exported: the analysis and the run enumerate the same subsets


@dataclass
class ExpertInfo:
    """One expert of a method: the modalities it reads, whether it handles missing ones itself."""

    modalities: tuple[str, ...]
    handles_missing: bool = False


@dataclass
class WithheldResult:
    """One (group, method) with ``withheld`` modalities left out, and the matching smaller model."""

    group: str
    method: str
    withheld: tuple[str, ...]
    kept: tuple[str, ...]
    stat: SeedStat | None  # accuracy per seed; None when it cannot be derived (``note`` says why)
    note: str = ""
    reference: SeedStat | None = None
    reference_note: str = ""  # which model the comparison would need, when the run lacks it

    @property
    def name(self) -> str:
        return "+".join(self.withheld) if self.withheld else FULL


def expert_layout(run: RunData, method: str, names: Sequence[str]) -> dict[str, ExpertInfo] | None:
    """The method's experts: from the run's record (``config.experts``), else from their names
    (``<modality>``, ``inter`` over all, ``inter:a+b``); ``None`` when a name says nothing."""
    recorded = (
        run.config.get("experts", {}).get(method) if isinstance(run.config.get("experts"), dict) else None
    )
    if isinstance(recorded, dict) and set(recorded) == set(names):
        return {
            n: ExpertInfo(tuple(recorded[n].get("modalities", ())), bool(recorded[n].get("handles_missing")))
            for n in names
        }
    layout = {}
    for name in names:
        if name in run.modalities:
            layout[name] = ExpertInfo((name,))
        elif name == INTER:
            layout[name] = ExpertInfo(run.modalities)
        elif name.startswith(INTER + ":") and set(name[6:].split("+")) <= set(run.modalities):
            layout[name] = ExpertInfo(tuple(name[6:].split("+")))
        else:
            return None
    return layout


def product(experts: Sequence[np.ndarray], log_prior: np.ndarray | None = None) -> np.ndarray:
    """``log_softmax(sum_k log q_k - (K - 1) log p(y))`` of K experts' log-probabilities ``(N, C)``."""
    total = np.sum([e.astype(np.float64) for e in experts], axis=0)
    if log_prior is not None:
        total = total - (len(experts) - 1) * np.asarray(log_prior, dtype=np.float64)
    shifted = total - total.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _log_priors(run: RunData, group: str) -> list[np.ndarray | None] | str:
    """The training prior per seed when the run used the prior correction, or why it is unknown."""
    if not run.config.get("prior_correction"):
        return [None] * len(run.seeds)
    saved = (run.config.get("log_priors") or {}).get(group, {})
    if not all(str(s) in saved for s in run.seeds):
        return (
            "the run used the prior correction but did not save its training prior (rerun with this "
            "version of i2m2); only the saved single-modality predictions are shown"
        )
    return [np.asarray(saved[str(s)], dtype=np.float64) for s in run.seeds]


def _consistent(run: RunData, group: str, method: str, layout: dict[str, ExpertInfo], priors: list) -> bool:
    """Whether products of the saved experts reproduce the saved single-modality predictions (they do
    unless an expert handles missing modalities itself, or the layout is not what its names say)."""
    for seed_index, p in enumerate(run.per_seed(group, method)):
        for modality, saved in p.withheld.items():
            if modality not in run.modalities:
                continue  # a subset withheld (``a+b``): saved only where an expert was asked again
            if any(e.handles_missing and modality in e.modalities for e in layout.values()):
                continue  # that expert was asked again without the modality: nothing to compare with
            kept = [n for n, e in layout.items() if modality not in e.modalities and n in p.experts]
            if not kept:
                continue
            derived = product([p.experts[n] for n in kept], priors[seed_index])
            if np.mean(derived.argmax(1) == saved.argmax(1)) < 0.99:
                return False
    return True


def _reference(run: RunData, group: str, kept: tuple[str, ...], method: str) -> tuple[SeedStat | None, str]:
    if len(kept) == 1:
        unimodal = UNIMODAL_PREFIX + kept[0]
        if run.has(group, unimodal):
            values = [accuracy(p.log_probs, p.labels) for p in run.per_seed(group, unimodal)]
            return SeedStat(group, unimodal, kept[0], values), ""
        return None, f"{unimodal} is not in this run (add it to --methods)"
    return None, f"none in this run ({method_base(method)} trained on {'+'.join(kept)} alone)"


def missing_results(run: RunData) -> list[WithheldResult]:
    """Every (group, product row, withheld subset): its accuracy per seed or why it cannot be derived."""
    results: list[WithheldResult] = []
    subsets = withheld_subsets(run.modalities) if len(run.modalities) > 1 else []
    for group in run.groups:
        priors = _log_priors(run, group)
        for method in run.methods:
            if method_base(method) not in ("i2m2", "intra", "inter") or not run.has(group, method):
                continue
            per_seed = run.per_seed(group, method)
            names = [n for n in per_seed[0].experts if all(n in p.experts for p in per_seed)]
            layout = expert_layout(run, method, names) if names else None
            saved = {m for m in per_seed[0].withheld if all(m in p.withheld for p in per_seed)}
            if layout is None and not saved:
                continue
            full = [accuracy(p.log_probs, p.labels) for p in per_seed]
            results.append(
                WithheldResult(group, method, (), run.modalities, SeedStat(group, method, FULL, full))
            )
            why_not = priors if isinstance(priors, str) else ""
            if layout is None:
                why_not = "the run did not record which modalities its experts read"
            elif (
                not why_not
                and not isinstance(priors, str)
                and not _consistent(run, group, method, layout, priors)
            ):
                why_not = (
                    "products of the saved experts do not reproduce the saved single-modality predictions "
                    "(an expert that handles missing modalities itself?)"
                )
            for withheld in subsets:
                kept = tuple(m for m in run.modalities if m not in withheld)
                stat, note = _withheld_stat(run, group, method, withheld, layout, priors, saved, why_not)
                reference, reference_note = _reference(run, group, kept, method)
                results.append(
                    WithheldResult(group, method, withheld, kept, stat, note, reference, reference_note)
                )
    return results


def _withheld_stat(
    run: RunData,
    group: str,
    method: str,
    withheld: tuple[str, ...],
    layout: dict[str, ExpertInfo] | None,
    priors: list | str,
    saved: set[str],
    why_not: str,
) -> tuple[SeedStat | None, str]:
    per_seed = run.per_seed(group, method)
    name = "+".join(withheld)
    gone = set(withheld)
    kept: list[str] = []
    partial: list[str] = []  # read some withheld and some kept modalities; would be asked without the former
    if layout is not None:
        kept = [n for n, e in layout.items() if not gone & set(e.modalities)]
        partial = [
            n
            for n, e in layout.items()
            if e.handles_missing and gone & set(e.modalities) and set(e.modalities) - gone
        ]
        if not kept and not partial:
            return None, "no expert left: every expert reads a withheld modality (the product is the prior)"
    if name in saved:  # the run's own computation (asks null-token experts again)
        values = [accuracy(p.withheld[name], p.labels) for p in per_seed]
        return SeedStat(group, method, name, values), "saved by the run"
    if why_not or layout is None or isinstance(priors, str):
        return None, f"not derivable: {why_not}"
    if partial:
        return None, (
            f"not derivable: expert(s) {partial} handle missing modalities themselves (null token) and would "
            f"have to be run again without {name}; this run saved that for single modalities only (rerun "
            "with this version of i2m2)"
        )
    values = [
        accuracy(product([p.experts[n] for n in kept], prior), p.labels)
        for p, prior in zip(per_seed, priors, strict=True)
    ]
    return SeedStat(group, method, name, values), f"product of {', '.join(kept)}"


def levels(run: RunData, group: str) -> tuple[float, float]:
    """Chance accuracy 1/C and the majority-class rate of the test labels (mean over seeds)."""
    first = next(p for (g, _, _), p in run.predictions.items() if g == group)
    classes = first.log_probs.shape[1]
    by_seed = {s: p.labels for (g, _, s), p in run.predictions.items() if g == group}
    majority = [float(np.bincount(y, minlength=classes).max()) / len(y) for y in by_seed.values()]
    return 1.0 / classes, float(np.mean(majority))


def missing_analysis(run: RunData) -> list[Artifact]:
    """missing.csv, missing.md and missing*_withheld<k>.png (one chart per number withheld)."""
    results = missing_results(run)
    if not results:
        return []
    group_levels = {group: levels(run, group) for group in run.groups}
    return [_csv(results), _markdown(run, results, group_levels), *_charts(run, results, group_levels)]


def _csv(results: list[WithheldResult]) -> Artifact:
    """missing.csv: one row per result, the cells of a missing number empty (its note says why)."""
    header = ["group", "method", "withheld", "kept", "mean_acc", "std_acc", "note"]
    header += ["reference_method", "reference_mean_acc", "reference_std_acc", "reference_note"]
    rows = [
        [r.group, r.method, r.name, "+".join(r.kept)]
        + ([r.stat.mean, r.stat.std] if r.stat else ["", ""])
        + [r.note]
        + (
            [r.reference.method, r.reference.mean, r.reference.std, ""]
            if r.reference
            else ["", "", "", r.reference_note]
        )
        for r in results
    ]
    return csv_artifact("missing.csv", header, rows)


def _markdown(
    run: RunData, results: list[WithheldResult], group_levels: dict[str, tuple[float, float]]
) -> Artifact:
    """missing.md: how the products are derived, chance and majority levels, and the table of results."""
    level_lines = []
    for group, (chance, majority) in group_levels.items():
        where = f"{group}: " if group else ""
        level_lines.append(
            f"- {where}chance (1/C) {100 * chance:.1f}%, "
            f"majority class of the test labels {100 * majority:.1f}%"
        )
    count = len(run.modalities)
    sampled = any(math.comb(count, k) > MAX_PER_SIZE for k in range(1, count))
    md = (
        f"# {run.experiment}: test accuracy (%) with modalities withheld, mean ± std over "
        f"{len(run.seeds)} seed(s)\n\n"
        "Withholding modalities leaves out of the product every expert that reads one of them; the kept "
        "experts' saved log-probabilities are multiplied again"
        + (" with the run's training prior (prior correction)" if run.config.get("prior_correction") else "")
        + ". An expert that handles missing modalities itself (null token) was asked again by the run "
        "without each subset (how: saved by the run). The matching smaller model is the model trained on "
        "the kept modalities alone, when the run has it.\n"
        + (
            f"\nWith {len(run.modalities)} modalities: every subset of a size with at most {MAX_PER_SIZE} "
            f"subsets, a seeded sample (seed {SAMPLE_SEED}) of {MAX_PER_SIZE} of a larger one.\n"
            if sampled
            else ""
        )
        + "\nReference levels:\n\n"
        + "\n".join(level_lines)
        + "\n\n"
        + _markdown_table(results)
    )
    return Artifact("missing.md", md.encode())


def _markdown_table(results: list[WithheldResult]) -> str:
    """The results in missing.md, with a group column only when the run has groups."""
    grouped = any(r.group for r in results)
    columns = ["group"] * grouped + ["method", "withheld", "accuracy (%)", "matching smaller model"]
    columns += ["its accuracy (%)", "how"]
    rows = [
        [r.group] * grouped
        + [
            r.method,
            "none" if not r.withheld else r.name,
            pm(r.stat.per_seed, 100) if r.stat else "n/a",
            (r.reference.method if r.reference else r.reference_note) if r.withheld else "",
            pm(r.reference.per_seed, 100) if r.reference else "",
            r.note,
        ]
        for r in results
    ]
    return markdown_table(columns, rows)


def _charts(
    run: RunData, results: list[WithheldResult], group_levels: dict[str, tuple[float, float]]
) -> list[Artifact]:
    """Per group and number of modalities withheld: bars per subset, one series per product row and one
    for the matching unimodal model, with chance and majority lines; with more than
    :data:`HEATMAP_ABOVE` subsets, a heatmap (``..._withheld<k>_heatmap.png``) instead."""
    charts = []
    sizes = sorted({len(r.withheld) for r in results if r.withheld and r.stat})
    for group, (chance, majority) in group_levels.items():
        for k in sizes:
            mine = [r for r in results if r.group == group and len(r.withheld) == k]
            names = list(dict.fromkeys(r.name for r in mine if r.stat))
            if not names:
                continue
            methods = list(dict.fromkeys(r.method for r in mine if r.stat))
            cell = {(r.method, r.name): r for r in mine}
            series: dict[str, tuple[list[float], list[float]]] = {}
            for method in methods:
                stats = [cell[(method, n)].stat if (method, n) in cell else None for n in names]
                series[method] = (
                    [100 * s.mean if s else np.nan for s in stats],
                    [100 * s.std if s else 0.0 for s in stats],
                )
            refs = [next((r.reference for r in mine if r.name == n and r.reference), None) for n in names]
            if any(refs):
                series[REFERENCE] = (
                    [100 * r.mean if r else np.nan for r in refs],
                    [100 * r.std if r else 0.0 for r in refs],
                )
            kept = {r.name: "+".join(r.kept) for r in mine}
            where = f" ({group})" if group else ""
            suffix = file_suffix(len(run.groups), group)
            if len(names) > HEATMAP_ABOVE:
                title = (
                    f"{run.experiment}{where}: test accuracy (%), each of the {len(names)} subsets of {k} "
                    f"of {len(run.modalities)} modalities withheld at test time; {run.source()}; "
                    f"chance {100 * chance:.1f}% (where the colour scale starts), majority class "
                    f"{100 * majority:.1f}%; "
                    + (f"cells: mean ± std over {len(run.seeds)} seeds; " if len(run.seeds) > 1 else "")
                    + "n/a where not derivable (see missing.md)"
                )
                png = _heatmap(names, series, title, chance)
                charts.append(Artifact(f"missing{suffix}_withheld{k}_heatmap.png", png))
                continue
            categories = [f"without {n}\n(keeps {kept[n]})" for n in names]
            title = (
                f"{run.experiment}{where}: test accuracy with {k} of {len(run.modalities)} modalities "
                f"withheld at test time; {run.source()}; bars absent where not derivable (see missing.md)"
            )
            references = {CHANCE: [100 * chance] * len(names), MAJORITY: [100 * majority] * len(names)}
            ylabel = f"test accuracy (%)\n{error_bars(len(run.seeds))}"
            png = grouped_bars(categories, series, ylabel, title, references=references, zoom=True)
            charts.append(Artifact(f"missing{suffix}_withheld{k}.png", png))
    return charts


def _heatmap(
    names: list[str], series: dict[str, tuple[list[float], list[float]]], title: str, chance: float
) -> bytes:
    """PNG: one row per product row (and the matching unimodal model), one column per withheld subset;
    colour and text the mean accuracy (± std over seeds when there are several), blank where not derivable;
    the colour scale starts at chance, so a cell at chance reads as no signal."""
    rows = list(series)
    grid = np.array([series[r][0] for r in rows], dtype=float)
    spread = np.array([series[r][1] for r in rows], dtype=float)
    low = 100 * chance
    high = max(low + 1.0, float(np.nanmax(grid)) if np.isfinite(grid).any() else low + 1.0)
    fig_width = max(7.0, 0.75 * len(names) + 3.5)
    fig, ax = plt.subplots(figsize=(fig_width, 0.6 * len(rows) + 2.6), layout="constrained")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=low, vmax=high, aspect="auto")
    for i in range(len(rows)):
        for j in range(len(names)):
            if not np.isfinite(grid[i, j]):
                ax.text(j, i, "n/a", ha="center", va="center", fontsize="x-small", color="gray")
                continue
            text = f"{grid[i, j]:.1f}" + (f"\n±{spread[i, j]:.1f}" if spread[i, j] > 0 else "")
            dark = grid[i, j] < low + 0.6 * (high - low)
            ax.text(
                j, i, text, ha="center", va="center", fontsize="x-small", color="white" if dark else "black"
            )
    ax.set_xticks(range(len(names)), [f"without {n}" for n in names], rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    fig.colorbar(image, ax=ax, label="test accuracy (%)")
    ax.set_title(wrap_title(title, fig_width), fontsize="medium")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
