"""Rescue rate (paper Section 4.6): examples every expert gets wrong alone but I2M2 gets right, and back.

"Every expert alone" is read two ways, both reported: the stage-1 models trained alone (rows
``unimodal:<m>`` and the matching ``inter``), and I2M2's own fine-tuned experts (its ``expert__*``
predictions). ``rescued`` counts examples where all experts are wrong and I2M2 is right; ``lost`` counts
examples where I2M2 is wrong although at least one expert is right. Shares are of all test examples;
the rescue rate is rescued / all-experts-wrong (the paper's "over 30%" on VQA-VS).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from i2m2.analysis.artifacts import Artifact, csv_artifact, file_suffix, markdown_table, mean_std
from i2m2.analysis.run_data import RunData
from i2m2.models.methods import UNIMODAL_PREFIX, inter_row_of
from i2m2.runs.plots import error_bars, grouped_bars

STAGE1 = "stage-1 models"
FINETUNED = "fine-tuned experts"
READING_LABELS = {  # chart categories that say which experts "every expert alone" means
    STAGE1: "experts = stage-1 models\n(unimodal and inter, trained alone)",
    FINETUNED: "experts = I2M2's own\nfine-tuned experts",
}


@dataclass
class RescueCount:
    """One seed's counts for one (group, I2M2 row, reading of "expert")."""

    group: str
    method: str
    experts: str
    seed: int
    n: int
    all_wrong: int
    rescued: int
    some_right: int
    lost: int

    @property
    def rescue_rate(self) -> float:
        return self.rescued / self.all_wrong if self.all_wrong else math.nan

    @property
    def loss_rate(self) -> float:
        return self.lost / self.some_right if self.some_right else math.nan

    def csv_row(self) -> list[object]:
        counts = [self.n, self.all_wrong, self.rescued, self.rescue_rate, self.some_right, self.lost]
        return [self.group, self.method, self.experts, self.seed, *counts, self.loss_rate]


def count_rescues(labels: np.ndarray, product: np.ndarray, experts: Sequence[np.ndarray]) -> dict[str, int]:
    """Counts from the product's and each expert's log-probabilities ``(N, C)`` against ``labels``."""
    right = product.argmax(axis=1) == labels
    expert_right = np.stack([e.argmax(axis=1) == labels for e in experts])
    any_right = expert_right.any(axis=0)
    return {
        "n": len(labels),
        "all_wrong": int((~any_right).sum()),
        "rescued": int((~any_right & right).sum()),
        "some_right": int(any_right.sum()),
        "lost": int((any_right & ~right).sum()),
    }


def rescue_counts(run: RunData) -> list[RescueCount]:
    counts: list[RescueCount] = []
    for group in run.groups:
        for method in run.i2m2_methods(group):
            standalone = [UNIMODAL_PREFIX + m for m in run.modalities] + [inter_row_of(method)]
            readings: dict[str, list[list[np.ndarray]]] = {}
            if run.modalities and all(run.has(group, m) for m in standalone):
                readings[STAGE1] = [
                    [run.predictions[(group, m, s)].log_probs for m in standalone] for s in run.seeds
                ]
            fine_tuned = [list(p.experts.values()) for p in run.per_seed(group, method)]
            if all(fine_tuned):
                readings[FINETUNED] = fine_tuned
            for reading, per_seed in readings.items():
                for seed, p, experts in zip(run.seeds, run.per_seed(group, method), per_seed, strict=True):
                    c = count_rescues(p.labels, p.log_probs, experts)
                    counts.append(RescueCount(group, method, reading, seed, **c))
    return counts


def rescue_analysis(run: RunData) -> list[Artifact]:
    """rescue.csv (per seed), rescue.md (mean ± std) and rescue*.png; nothing without I2M2 rows."""
    counts = rescue_counts(run)
    if not counts:
        return []
    header = ["group", "method", "experts", "seed", "n", "all_experts_wrong", "rescued", "rescue_rate"]
    header += ["some_expert_right", "lost", "loss_rate"]
    md = [
        f"# {run.experiment}: rescue rate of I2M2 (paper Section 4.6)\n\n"
        "rescued: every expert alone wrong, I2M2 right; lost: I2M2 wrong although some expert alone is "
        "right. Shares are % of all test examples; the rescue rate is rescued / all-experts-wrong; "
        f"mean ± std over {len(run.seeds)} seed(s).\n"
    ]
    columns = ["experts", "all experts wrong", "rescued", "rescued (% of test)", "rescue rate (%)"]
    columns += ["lost", "lost (% of test)"]
    keys = list(dict.fromkeys((c.group, c.method) for c in counts))
    artifacts = [csv_artifact("rescue.csv", header, [c.csv_row() for c in counts])]
    for group, method in keys:
        mine = [c for c in counts if (c.group, c.method) == (group, method)]
        readings = list(dict.fromkeys(c.experts for c in mine))
        by_reading = {r: [c for c in mine if c.experts == r] for r in readings}
        title = f"{group} {method}" if group else method
        table = [_summary_row(r, seeds) for r, seeds in by_reading.items()]
        md.append(f"\n## {title}\n\n" + markdown_table(columns, table))
        series = {
            label: _shares([[getattr(c, field) / c.n for c in seeds] for seeds in by_reading.values()])
            for label, field in (("rescued by I2M2", "rescued"), ("lost by I2M2", "lost"))
        }
        png = grouped_bars(
            [READING_LABELS.get(r, r) for r in readings],
            series,
            f"% of all test examples\n{error_bars(len(run.seeds))}",
            f"{run.experiment} {title}: examples I2M2 rescues and loses ({run.source()})\n"
            "rescued: every expert alone wrong, I2M2 right; lost: I2M2 wrong, some expert alone right",
        )
        artifacts.append(Artifact(f"rescue{file_suffix(len(keys), group, method)}.png", png))
    artifacts.append(Artifact("rescue.md", "".join(md).encode()))
    return artifacts


def _summary_row(reading: str, seeds: Sequence[RescueCount]) -> list[str]:
    return [
        reading,
        _pm([c.all_wrong for c in seeds], 1),
        _pm([c.rescued for c in seeds], 1),
        _pm([100 * c.rescued / c.n for c in seeds], 2),
        _pm([100 * c.rescue_rate for c in seeds], 1),
        _pm([c.lost for c in seeds], 1),
        _pm([100 * c.lost / c.n for c in seeds], 2),
    ]


def _shares(per_reading: Sequence[Sequence[float]]) -> tuple[list[float], list[float]]:
    """Means and stds, in percent, of per-seed fractions, one pair per reading."""
    stats = [mean_std([100 * v for v in values]) for values in per_reading]
    return [m for m, _ in stats], [s for _, s in stats]


def _pm(values: Sequence[float], digits: int) -> str:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "n/a"
    mean, std = mean_std(finite)
    return f"{mean:.{digits}f} ± {std:.{digits}f}"
