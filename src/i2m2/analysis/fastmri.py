"""The fastMRI analyses of the paper, from a run of ``fastmri-knee`` and its companion runs.

``i2m2 analyze RUN`` on a ``fastmri-knee`` run (its experiment declares the ``fastmri`` analysis) writes,
per finding, a table (.md, .csv) and a grouped bar chart (.png) for each analysis whose inputs are there:

* ``figure2``: every row of RUN (and ``unimodal:rss`` of ``RUN/rss``, the RSS baseline, first): test
  AUROC and balanced accuracy (threshold chosen on validation) per finding.
* ``figure3``: parameter-matched ensembles against I2M2 (AUROC). An ensemble averages the *probabilities*
  of models trained alone: 3x magnitude (seeds k, k+1, k+2 mod S), 3x phase, magnitude + phase,
  magnitude + phase + inter (seed k each). Read from RUN's saved test predictions; needs the same test
  set for every seed (``--split-seed`` fixes it) and S >= 3 seeds for the 3x rows. With exactly 3 seeds
  every seed's triple is the same three models: the row says so and shows one value (no spread, "n/a").
* ``figure4``: ``RUN/wrn20-3`` (WideResNet-20-3 unimodal and inter rows) against RUN's I2M2, with
  parameter counts read from the checkpoints.
* ``table5``: RUN's I2M2 (pretrained experts, fine-tuned) against ``RUN/from-scratch``'s I2M2.
* ``figureC7``: AUROC at each test SNR per finding and method, from ``RUN/noise-sweep`` (or RUN itself
  when it was run with ``--noise-sweep-db``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchmetrics.functional.classification import binary_auroc

from i2m2.analysis.artifacts import Artifact, csv_artifact, markdown_table, mean_std, per_seed_text, pm
from i2m2.data.fastmri_labels import FASTMRI_FINDINGS
from i2m2.errors import DataError
from i2m2.runs.folder import RunFolder
from i2m2.runs.plots import error_bars, grouped_bars
from i2m2.runs.predictions import Predictions, load_predictions, predictions_path

COMPANIONS = ("rss", "wrn20-3", "from-scratch", "noise-sweep")
BINARY_CHANCE = "chance (0.5)"  # each finding is present or absent: AUROC and balanced accuracy
FINDINGS = FASTMRI_FINDINGS
MAG, PHASE = "unimodal:magnitude", "unimodal:phase"


class FastMRIRun:
    """results.json of one run and lazy access to its per-seed test predictions."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            results = json.loads((self.path / "results.json").read_text())
            self.rows: list[dict[str, Any]] = list(results["rows"])
            self.config: dict[str, Any] = dict(results["config"])
            self.seeds = [int(s) for s in self.config["seeds"]]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(
                f"{self.path / 'results.json'}: not a results.json of 'i2m2 run' ({err})"
            ) from err
        self._cache: dict[tuple[str, int], Predictions] = {}

    def row(self, method: str) -> dict[str, Any] | None:
        return next((r for r in self.rows if r["method"] == method), None)

    def has(self, method: str) -> bool:
        return all(predictions_path(self.path, "", method, s).is_file() for s in self.seeds)

    def predictions(self, method: str, seed: int) -> Predictions:
        key = (method, seed)
        if key not in self._cache:
            p = load_predictions(predictions_path(self.path, "", method, seed))
            if p.log_probs.ndim != 3 or p.labels.shape != p.log_probs.shape[:2]:
                raise DataError(
                    f"{predictions_path(self.path, '', method, seed)}: expected labels (N, findings) and "
                    f"log_probs (N, findings, 2), got {p.labels.shape} and {p.log_probs.shape}"
                )
            self._cache[key] = p
        return self._cache[key]

    def parameters(self, method: str) -> int:
        """Trained parameters of ``method``'s seed-0 checkpoint (buffers such as norm statistics left out)."""
        folder = RunFolder(self.path)
        state = folder.load_weights(folder.stem("", method, self.seeds[0]))
        skip = ("log_prior", "running_mean", "running_var", "num_batches_tracked")
        return sum(v.numel() for k, v in state.items() if not k.endswith(skip))


def auroc(probs: np.ndarray, labels: np.ndarray) -> float:
    """AUROC of positive-class probabilities; NaN when the labels hold one class only."""
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(binary_auroc(torch.as_tensor(probs, dtype=torch.float64), torch.as_tensor(labels)))


def finding_aurocs(probs: np.ndarray, labels: np.ndarray) -> list[float]:
    """AUROC of every finding from ``(N, findings)`` positive probabilities and labels."""
    return [auroc(probs[:, t], labels[:, t]) for t in range(labels.shape[1])]


def fastmri_analysis(run_dir: Path) -> list[Artifact]:
    """Every analysis of the module docstring whose inputs the run (and its companions) hold."""
    run = FastMRIRun(run_dir)
    companions = {
        name: FastMRIRun(run.path / name)
        for name in COMPANIONS
        if (run.path / name / "results.json").is_file()
    }
    artifacts = figure2(run, companions.get("rss"))
    artifacts += figure3(run)
    if "wrn20-3" in companions:
        artifacts += figure4(run, companions["wrn20-3"])
    if "from-scratch" in companions:
        artifacts += table5(run, companions["from-scratch"])
    sweep = companions.get("noise-sweep") or (run if run.config.get("group_names") else None)
    if sweep is not None:
        artifacts += figure_c7(sweep)
    return artifacts


# (label, per-seed values per finding)
Series = list[tuple[str, list[list[float]]]]


def _outputs(name: str, title: str, series: Series, extra: dict[str, str] | None = None) -> list[Artifact]:
    """``name``.md/.csv (mean ± std per finding, in %) and ``name``.png (grouped bars per finding)."""
    extra = extra or {}
    header = ["method", *(["parameters"] if extra else []), *FINDINGS, "mean"]
    rows, csv_rows = [], []
    for label, per_finding in series:
        mean_row = list(np.nanmean(np.array(per_finding, dtype=float), axis=0)) if per_finding else []
        cells = [pm(v, 100) for v in per_finding] + [pm(mean_row, 100) if mean_row else ""]
        rows.append([label, *([extra[label]] if extra else []), *cells])
        for finding, values in zip(FINDINGS, per_finding, strict=True):
            csv_rows.append([label, finding, *mean_std(values), per_seed_text(values)])
    table = f"# {title}\n\ntest metric (%), mean ± std over seeds\n\n" + markdown_table(header, rows)
    chart = grouped_bars(
        list(FINDINGS),
        {
            label: ([100 * mean_std(v)[0] for v in pf], [100 * mean_std(v)[1] for v in pf])
            for label, pf in series
        },
        ("test AUROC (%)" if "balanced" not in name else "test balanced accuracy (%)")
        + f"\n{error_bars(max((len(v) for _, pf in series for v in pf), default=0))}",
        title,
        references={BINARY_CHANCE: [50.0] * len(FINDINGS)},  # AUROC and balanced accuracy of a finding
        zoom=True,
    )
    return [
        Artifact(f"{name}.md", table.encode()),
        csv_artifact(f"{name}.csv", ["method", "finding", "mean", "std", "per_seed"], csv_rows),
        Artifact(f"{name}.png", chart),
    ]


def _row_series(
    run: FastMRIRun, method: str, metric: str, label: str | None = None
) -> tuple[str, list[list[float]]]:
    row = run.row(method)
    if row is None:
        raise DataError(f"{run.path}/results.json: no row '{method}'")
    return label or method, [row["metrics"][f"{metric}_{f}"]["per_seed"] for f in FINDINGS]


def figure2(run: FastMRIRun, rss: FastMRIRun | None) -> list[Artifact]:
    """Figure 2: RSS (if its companion run is there), magnitude, phase, intra, inter and I2M2 per finding."""
    sources = ([(rss, "unimodal:rss")] if rss is not None and rss.row("unimodal:rss") else []) + [
        (run, r["method"]) for r in run.rows
    ]
    artifacts = []
    for metric, title in (("auroc", "AUROC"), ("balanced_acc", "balanced accuracy")):
        series = [_row_series(source, method, metric) for source, method in sources]
        name = "figure2" if metric == "auroc" else "figure2_balanced_acc"
        artifacts += _outputs(name, f"Figure 2: test {title} per finding (fastMRI knee)", series)
    return artifacts


def _ensemble(run: FastMRIRun, members: Callable[[int], Sequence[tuple[str, int]]]) -> list[list[float]]:
    """Per finding, per seed k: AUROC of the averaged probabilities of ``members(k)``."""
    per_seed = []
    for k in run.seeds:
        parts = [run.predictions(method, seed) for method, seed in members(k)]
        labels = parts[0].labels
        for p in parts[1:]:
            if not np.array_equal(p.labels, labels):
                raise DataError(
                    f"{run.path}: seeds have different test sets; ensembles need one --split-seed"
                )
        probs = np.mean([np.exp(p.log_probs[..., 1]) for p in parts], axis=0)
        per_seed.append(finding_aurocs(probs, labels))
    return [list(v) for v in np.array(per_seed).T]


def figure3(run: FastMRIRun) -> list[Artifact]:
    """Figure 3: ensembles of separately trained models with I2M2's parameter budget, against I2M2."""
    if not all(run.has(m) for m in (MAG, PHASE, "inter", "i2m2")):
        return []
    seeds = run.seeds
    series: Series = []
    if len(seeds) >= 3:
        for label, method in (("3x magnitude", MAG), ("3x phase", PHASE)):
            triple = lambda k, m=method: [(m, seeds[(seeds.index(k) + j) % len(seeds)]) for j in range(3)]  # noqa: E731
            values = _ensemble(run, triple)
            if len(seeds) == 3:  # every seed's triple is the same three models: one ensemble, no spread
                label, values = f"{label} (one ensemble of the 3 seeds' models)", [v[:1] for v in values]
            series.append((label, values))
    series.append(("magnitude + phase", _ensemble(run, lambda k: [(MAG, k), (PHASE, k)])))
    series.append(
        ("magnitude + phase + inter", _ensemble(run, lambda k: [(MAG, k), (PHASE, k), ("inter", k)]))
    )
    series.append(("I2M2", _ensemble(run, lambda k: [("i2m2", k)])))
    return _outputs(
        "figure3", "Figure 3: parameter-matched ensembles (averaged probabilities) vs I2M2", series
    )


def figure4(run: FastMRIRun, wide: FastMRIRun) -> list[Artifact]:
    """Figure 4: WideResNet-20-3 unimodal and inter rows against PreActResNet-18 I2M2, with sizes."""
    sources = [
        (wide, m, f"WRN-20-3 {m.removeprefix('unimodal:')}") for m in (MAG, PHASE, "inter") if wide.row(m)
    ]
    if run.row("i2m2") is None or not sources:
        return []
    sources.append((run, "i2m2", "PreActResNet-18 I2M2"))
    series = [_row_series(source, method, "auroc", label) for source, method, label in sources]
    sizes = {label: f"{source.parameters(method):,}" for source, method, label in sources}
    return _outputs(
        "figure4", "Figure 4: WideResNet-20-3 models vs PreActResNet-18 I2M2 (AUROC)", series, sizes
    )


def table5(run: FastMRIRun, scratch: FastMRIRun) -> list[Artifact]:
    """Table 5: I2M2 from pretrained experts (RUN) against I2M2 trained jointly from scratch."""
    if run.row("i2m2") is None or scratch.row("i2m2") is None:
        return []
    series = [
        _row_series(scratch, "i2m2", "auroc", "I2M2 from scratch"),
        _row_series(run, "i2m2", "auroc", "I2M2 pretrained experts"),
    ]
    return _outputs("table5", "Table 5: effect of pre-training the experts (test AUROC)", series)


def figure_c7(sweep: FastMRIRun) -> list[Artifact]:
    """Figure C.7: per finding, test AUROC of every method at each noise level (clean first)."""
    levels = [str(n) for n in sweep.config.get("group_names", [])]
    rows = [r["method"] for r in sweep.rows]
    stage1 = [m for m in (MAG, PHASE) if m not in rows]  # trained for I2M2 without being rows
    methods = [m for m in stage1 + rows if sweep.has(m)]
    if not levels or not methods:
        return []
    # aurocs[method][level][finding] = per-seed values
    aurocs: dict[str, list[list[list[float]]]] = {}
    for method in methods:
        per_seed = []
        for seed in sweep.seeds:
            p = sweep.predictions(method, seed)
            if p.groups is None:
                raise DataError(f"{sweep.path}: predictions of {method} have no noise levels (groups)")
            probs = np.exp(p.log_probs[..., 1])
            per_seed.append(
                [finding_aurocs(probs[p.groups == g], p.labels[p.groups == g]) for g in range(len(levels))]
            )
        values = np.array(per_seed)  # (seeds, levels, findings)
        aurocs[method] = [[list(values[:, g, t]) for t in range(len(FINDINGS))] for g in range(len(levels))]
    header = ["method", "finding", *levels]
    rows = [
        [m, f, *(pm(aurocs[m][g][t], 100) for g in range(len(levels)))]
        for t, f in enumerate(FINDINGS)
        for m in methods
    ]
    csv_rows = [
        [m, f, levels[g], *mean_std(aurocs[m][g][t])]
        for m in methods
        for g in range(len(levels))
        for t, f in enumerate(FINDINGS)
    ]
    title = "Figure C.7: test AUROC (%) against test-time k-space SNR"
    artifacts = [
        Artifact(
            "figureC7.md", (f"# {title}\n\nmean ± std over seeds\n\n" + markdown_table(header, rows)).encode()
        ),
        csv_artifact("figureC7.csv", ["method", "finding", "level", "mean", "std"], csv_rows),
    ]
    for t, finding in enumerate(FINDINGS):
        series = {
            m: (
                [100 * mean_std(aurocs[m][g][t])[0] for g in range(len(levels))],
                [100 * mean_std(aurocs[m][g][t])[1] for g in range(len(levels))],
            )
            for m in methods
        }
        ylabel = f"test AUROC (%)\n{error_bars(len(sweep.seeds))}"
        chance = {BINARY_CHANCE: [50.0] * len(levels)}
        png = grouped_bars(levels, series, ylabel, f"Figure C.7: {finding}", references=chance, zoom=True)
        artifacts.append(Artifact(f"figureC7_{finding}.png", png))
    return artifacts
