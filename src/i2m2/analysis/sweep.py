"""The synthetic sweep's map: I2M2 minus the better specialist in every cell of the intra x inter grid.

Applies to runs whose groups are all grid cells ``intra=<a> inter=<b>`` (``i2m2 run synthetic-sweep``)
with intra, inter and I2M2 rows. Per cell, the *better specialist* is intra or inter, whichever has the
higher mean test accuracy over seeds; the difference is paired by seed (same data, same test set):
``d_s = acc_i2m2(s) - acc_better(s)``, reported as ``mean(d) ± SE`` with
``SE = std(d, ddof=1) / sqrt(n_seeds)``. A cell is *within noise* when ``|mean(d)| < 2 SE``; with one
seed there is no noise estimate and every cell says so.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from i2m2.analysis.artifacts import Artifact, csv_artifact, markdown_table
from i2m2.analysis.groups import accuracy
from i2m2.analysis.run_data import RunData
from i2m2.models.methods import method_base
from i2m2.runs.plots import wrap_title

CELL = re.compile(r"^intra=([0-9.eE+-]+) inter=([0-9.eE+-]+)$")
NOISE_SE = 2.0  # a difference under this many standard errors is within noise


@dataclass
class Cell:
    """One grid cell: per-seed accuracies of the three rows and I2M2's paired gain over the better one."""

    intra_strength: float
    inter_strength: float
    intra: list[float]
    inter: list[float]
    i2m2: list[float]

    @property
    def better(self) -> str:
        return "intra" if np.mean(self.intra) >= np.mean(self.inter) else "inter"

    @property
    def diffs(self) -> list[float]:
        best = self.intra if self.better == "intra" else self.inter
        return [a - b for a, b in zip(self.i2m2, best, strict=True)]

    @property
    def diff(self) -> float:
        return float(np.mean(self.diffs))

    @property
    def se(self) -> float:
        d = self.diffs
        return float(np.std(d, ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan

    @property
    def within_noise(self) -> bool | None:
        """``None`` with one seed (no noise estimate)."""
        return None if math.isnan(self.se) else abs(self.diff) < NOISE_SE * self.se


def is_sweep(run: RunData) -> bool:
    return bool(run.groups) and all(CELL.match(g) for g in run.groups)


def sweep_cells(run: RunData) -> list[Cell]:
    """The grid's cells in run order; empty when the run is not a sweep or lacks one of the rows."""
    if not is_sweep(run):
        return []
    cells = []
    for group in run.groups:
        match = CELL.match(group)
        assert match is not None
        found = {}
        for base in ("intra", "inter", "i2m2"):
            methods = [m for m in run.methods if method_base(m) == base and run.has(group, m)]
            if not methods:
                return []
            found[base] = [accuracy(p.log_probs, p.labels) for p in run.per_seed(group, methods[0])]
        cells.append(Cell(float(match.group(1)), float(match.group(2)), **found))
    return cells


def sweep_analysis(run: RunData) -> list[Artifact]:
    """sweep.csv, sweep.md and the heatmap sweep.png; nothing for runs that are not a sweep."""
    cells = sweep_cells(run)
    if not cells:
        return []
    header = ["intra_strength", "inter_strength", "intra_acc", "inter_acc", "i2m2_acc", "better"]
    header += ["i2m2_minus_better", "se", "within_noise"]
    rows = [
        [
            c.intra_strength,
            c.inter_strength,
            *[float(np.mean(v)) for v in (c.intra, c.inter, c.i2m2)],
            c.better,
            c.diff,
            c.se,
            "" if c.within_noise is None else c.within_noise,
        ]
        for c in cells
    ]
    md_rows = [
        [f"{c.intra_strength:g}", f"{c.inter_strength:g}"]
        + [f"{100 * np.mean(v):.1f}" for v in (c.intra, c.inter, c.i2m2)]
        + [c.better, _diff_text(c), {None: "no estimate (1 seed)", True: "yes", False: "no"}[c.within_noise]]
        for c in cells
    ]
    columns = ["intra", "inter", "intra acc (%)", "inter acc (%)", "I2M2 acc (%)", "better specialist"]
    columns += ["I2M2 − better (pp)", "within noise"]
    chance = 100.0 / run.predictions[next(iter(run.predictions))].log_probs.shape[1]
    md = (
        f"# {run.experiment}: I2M2 minus the better specialist, per cell of the grid\n\n"
        f"Test accuracy, mean over {len(run.seeds)} seed(s); chance (1/C) is {chance:.1f}%. The better "
        "specialist is intra or inter, whichever has the higher mean; the difference is paired by seed, "
        f"mean ± standard error; within noise: |difference| < {NOISE_SE:g} SE.\n\n"
        + markdown_table(columns, md_rows)
    )
    return [
        csv_artifact("sweep.csv", header, rows),
        Artifact("sweep.md", md.encode()),
        Artifact("sweep.png", heatmap(run, cells)),
    ]


def _diff_text(c: Cell) -> str:
    return _signed(100 * c.diff) + ("" if math.isnan(c.se) else f" ± {100 * c.se:.1f}")


def _signed(value: float) -> str:
    """``+1.2``, ``-0.7``; ``0.0`` rather than ``-0.0``."""
    return "0.0" if abs(value) < 0.05 else f"{value:+.1f}"


def heatmap(run: RunData, cells: list[Cell]) -> bytes:
    """PNG: rows intra strength, columns inter strength, colour I2M2 − better (pp); hatched within noise."""
    intra = sorted({c.intra_strength for c in cells})
    inter = sorted({c.inter_strength for c in cells})
    grid = np.full((len(intra), len(inter)), np.nan)
    for c in cells:
        grid[intra.index(c.intra_strength), inter.index(c.inter_strength)] = 100 * c.diff
    # a colour scale of at least ±5 points: differences of a fraction of a point look as small as they are
    limit = max(5.0, float(np.nanmax(np.abs(grid))))
    fig_width = 1.3 * len(inter) + 3.2
    fig, ax = plt.subplots(figsize=(fig_width, 0.9 * len(intra) + 2.4), layout="constrained")
    image = ax.imshow(grid, cmap="RdBu", vmin=-limit, vmax=limit, origin="lower", aspect="auto")
    for c in cells:
        i, j = intra.index(c.intra_strength), inter.index(c.inter_strength)
        noise = c.within_noise
        if noise:
            ax.add_patch(
                plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="gray", lw=0)
            )
        label = f"{_signed(100 * c.diff)}\nvs {c.better}" + ("\n≈ noise" if noise else "")
        dark = abs(100 * c.diff) > 0.6 * limit
        ax.text(j, i, label, ha="center", va="center", fontsize="small", color="white" if dark else "black")
    ax.set_xticks(range(len(inter)), [f"{b:g}" for b in inter])
    ax.set_yticks(range(len(intra)), [f"{a:g}" for a in intra])
    ax.set_xlabel("inter-modality strength")
    ax.set_ylabel("intra-modality strength")
    fig.colorbar(image, ax=ax, label="I2M2 − better specialist (accuracy, pp)")
    noise_rule = (
        f"hatched: |diff| < {NOISE_SE:g} SE over seeds" if len(run.seeds) > 1 else "1 seed: no noise estimate"
    )
    title = f"{run.experiment}: I2M2 minus max(intra, inter), test accuracy; {run.source()}; {noise_rule}"
    ax.set_title(wrap_title(title, fig_width), fontsize="medium")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
