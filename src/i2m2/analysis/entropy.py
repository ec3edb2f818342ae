"""Paper Table C.7: how uncertain each of I2M2's fine-tuned experts is, against the label distribution.

An expert whose mean predictive entropy stays close to H(y) has learned little from its input alone
(on easy-VQA the image expert cannot know the question); one far below H(y) is confident by itself.
Entropies are in nats (natural log), as in the paper (AV-MNIST's ten balanced classes give 2.30).
"""

from __future__ import annotations

import numpy as np

from i2m2.analysis.artifacts import Artifact, SeedStat, csv_artifact, file_suffix, markdown_table, pm
from i2m2.analysis.run_data import RunData
from i2m2.runs.plots import error_bars, grouped_bars

LABELS = "H(y)"


def predictive_entropy(log_probs: np.ndarray) -> float:
    """Mean over examples of ``H(p) = -sum_y p(y) log p(y)`` for rows of log-probabilities ``(N, C)``."""
    log_probs = np.asarray(log_probs, dtype=np.float64)
    finite = np.where(np.isfinite(log_probs), log_probs, 0.0)  # p = 0 contributes 0, not 0 * -inf
    return float(-(np.exp(log_probs) * finite).sum(axis=1).mean())


def label_entropy(labels: np.ndarray, num_classes: int) -> float:
    """Entropy of the empirical label distribution ``H(y)``."""
    counts = np.bincount(np.asarray(labels), minlength=num_classes).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def entropy_stats(run: RunData) -> list[SeedStat]:
    """Per (group, I2M2 row): H(y), each fine-tuned expert's H(ŷ | expert) and the product's own."""
    stats: list[SeedStat] = []
    for group in run.groups:
        for method in run.i2m2_methods(group):
            per_seed = run.per_seed(group, method)
            values: dict[str, list[float]] = {LABELS: []}
            for p in per_seed:
                values[LABELS].append(label_entropy(p.labels, p.log_probs.shape[1]))
                for expert, log_probs in p.experts.items():
                    values.setdefault(f"H(ŷ | {expert})", []).append(predictive_entropy(log_probs))
                values.setdefault(f"H(ŷ | {method})", []).append(predictive_entropy(p.log_probs))
            stats += [
                SeedStat(group, method, name, seeds)
                for name, seeds in values.items()
                if len(seeds) == len(per_seed)  # an expert missing from some seed is not averaged
            ]
    return stats


def entropy_analysis(run: RunData) -> list[Artifact]:
    """entropy.csv, entropy.md and entropy*.png; nothing when the run has no I2M2 rows."""
    stats = entropy_stats(run)
    if not stats:
        return []
    header = ["group", "method", "distribution", "mean_nats", "std_nats", "per_seed"]
    artifacts = [csv_artifact("entropy.csv", header, [s.csv_row() for s in stats])]
    md = [
        f"# {run.experiment}: entropy of I2M2's fine-tuned experts (paper Table C.7)\n\n"
        f"Mean predictive entropy over test examples in nats, mean ± std over {len(run.seeds)} seed(s). "
        "H(y) is the entropy of the test labels; an expert close to it is uninformative on its own.\n"
    ]
    keys = list(dict.fromkeys((s.group, s.method) for s in stats))
    for group, method in keys:
        mine = [s for s in stats if (s.group, s.method) == (group, method)]
        title = f"{group} {method}" if group else method
        table = [[s.name, pm(s.per_seed, digits=3)] for s in mine]
        md.append(f"\n## {title}\n\n" + markdown_table(["distribution", "entropy (nats)"], table))
        bars = [s for s in mine if s.name != LABELS]
        label = next(s for s in mine if s.name == LABELS)
        png = grouped_bars(
            [s.name.removeprefix("H(ŷ | ").removesuffix(")") for s in bars],
            {"mean predictive entropy": ([s.mean for s in bars], [s.std for s in bars])},
            f"entropy (nats)\n{error_bars(len(run.seeds))}",
            f"{run.experiment} {title}: entropy of each expert",
            hline=(label.mean, LABELS),
        )
        artifacts.append(Artifact(f"entropy{file_suffix(len(keys), group, method)}.png", png))
    artifacts.append(Artifact("entropy.md", "".join(md).encode()))
    return artifacts
