"""Whether a row's lead is real: paired bootstrap confidence intervals of metric differences between rows.

A table of means ± std over seeds says little about a 0.3-point lead on a test set of 1,800 examples
(that is 5 examples). Every run therefore compares each product (intra, I2M2, ``i2m2[<fusion>]``) with the
best other row, and intra with inter, on the monitored test metric, from the per-example predictions each
job saves (:mod:`i2m2.runs.predictions`):

* the difference is the row's metric minus the other's, per seed on the same test examples, averaged
  over seeds;
* its 95% interval is a paired bootstrap over test examples: each draw resamples each seed's test examples
  with replacement (the same resample for both rows, so noise the two rows share cancels), recomputes both
  metrics on it (AUROC too, from the resampled scores), and averages the seeds' differences; the interval
  is the 2.5th and 97.5th percentiles of those averages. One seed gets an interval from its examples;
* the verdict reads ``better`` (the interval lies above 0), ``worse`` (below 0) or ``within noise``.

The interval covers test-set sampling only; the spread of training over seeds is the tables' ± std.
Deterministic: the draws come from a fixed seed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from i2m2.errors import DataError
from i2m2.models.methods import LOGISTIC, STAGE2_METHODS, method_base
from i2m2.runs.predictions import Predictions, load_predictions, predictions_path

DRAWS = 2000
CONFIDENCE = 0.95
SEED = 20240601
BETTER, WORSE, WITHIN_NOISE = "better", "worse", "within noise"
# The metrics computed from the labels and log-probabilities; any other needs per-example ``scores``.
LABEL_METRICS = ("acc", "balanced_acc", "auroc")
# Resampling weights held at once: draws x examples (about 16 MB of float64).
CHUNK_CELLS = 2_000_000
METHOD_TEXT = (
    "paired bootstrap over test examples ({draws} draws): each draw resamples each seed's test examples "
    "(the same resample for both rows) and averages the seeds' differences; {level:.0f}% interval from the "
    "draws' percentiles; 'within noise' when it contains 0 (test-set noise only; the ± std is the seeds')"
)

# weights (B, N) of each example in B resamples -> the metric of each resample, (B,); NaN where undefined.
Statistic = Callable[[np.ndarray], np.ndarray]


@dataclass
class Difference:
    """A paired difference ``a - b`` of one metric, with its interval and verdict."""

    difference: float
    low: float
    high: float
    verdict: str
    examples: list[int]
    draws: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "difference": self.difference,
            "ci_low": self.low,
            "ci_high": self.high,
            "verdict": self.verdict,
            "test_examples": self.examples,
            "draws": self.draws,
        }


def verdict_word(low: float, high: float) -> str:
    """``better`` when the interval lies above 0, ``worse`` below, ``within noise`` when it holds 0."""
    if low > 0:
        return BETTER
    if high < 0:
        return WORSE
    return WITHIN_NOISE


def weighted_auroc(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of ``scores`` for ``positive`` examples under each row of ``weights`` (ties count one half,
    as the trapezoidal ROC area); NaN for a row without positive or without negative weight.

    The examples are sorted once; a resample only changes their weights, so each row costs O(N).
    """
    order = np.argsort(scores, kind="stable")
    ranked, pos = scores[order], positive[order].astype(np.float64)
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # one block per distinct score
    w = weights[:, order]
    pos_w = np.add.reduceat(w * pos, starts, axis=1)
    neg_w = np.add.reduceat(w * (1.0 - pos), starts, axis=1)
    below = np.cumsum(neg_w, axis=1) - neg_w
    area = (pos_w * (below + 0.5 * neg_w)).sum(axis=1)
    total = pos_w.sum(axis=1) * neg_w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, area / np.where(total > 0, total, 1.0), np.nan)


def nan_mean(values: np.ndarray) -> np.ndarray:
    """Row means over the defined (finite) columns; NaN for a row with none (macro means skip classes
    the resample leaves undefined, as :mod:`i2m2.metrics` does)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=1)


def statistic(metric: str, predictions: Predictions) -> Statistic | None:
    """The metric as a function of example weights, or ``None`` when it is no function of per-example
    predictions (e.g. a threshold chosen on validation).

    Single-label ``acc``, ``balanced_acc`` (mean recall over the classes present) and ``auroc`` (macro
    one-vs-rest over the classes defined); multi-task ``auroc`` (mean over tasks); and any metric that is a
    mean of per-example scores saved with the predictions (``scores``, e.g. the VQA score).
    """
    labels, log_probs = predictions.labels, predictions.log_probs.astype(np.float64)
    n = len(labels)
    if predictions.scores is not None and metric not in LABEL_METRICS:
        scores = predictions.scores.astype(np.float64)
        return lambda w: w @ scores / n
    if labels.ndim == 2 and log_probs.ndim == 3 and metric == "auroc":  # T binary tasks
        tasks = range(labels.shape[1])
        return lambda w: nan_mean(
            np.stack([weighted_auroc(log_probs[:, t, 1], labels[:, t] == 1, w) for t in tasks], axis=1)
        )
    if labels.ndim != 1 or log_probs.ndim != 2:
        return None
    correct = (log_probs.argmax(axis=1) == labels).astype(np.float64)
    if metric == "acc":
        return lambda w: w @ correct / n
    classes = log_probs.shape[1]
    onehot = np.eye(classes)[labels]
    if metric == "balanced_acc":

        def balanced(w: np.ndarray) -> np.ndarray:
            support = w @ onehot
            recall = np.where(
                support > 0, (w @ (onehot * correct[:, None])) / np.maximum(support, 1e-300), np.nan
            )
            return nan_mean(recall)

        return balanced
    if metric == "auroc":
        return lambda w: nan_mean(
            np.stack([weighted_auroc(log_probs[:, k], labels == k, w) for k in range(classes)], axis=1)
        )
    return None


def per_example_values(metric: str, predictions: Predictions) -> np.ndarray | None:
    """The per-example values whose mean is ``metric`` (correct or not, a saved score), when it is such a
    mean: then a resample's metric is a gather and a mean, much cheaper than weighting every example."""
    if predictions.scores is not None and metric not in LABEL_METRICS:
        return predictions.scores.astype(np.float64)
    if metric == "acc" and predictions.labels.ndim == 1 and predictions.log_probs.ndim == 2:
        return (predictions.log_probs.argmax(axis=1) == predictions.labels).astype(np.float64)
    return None


def paired_difference(
    a: Sequence[Predictions],
    b: Sequence[Predictions],
    metric: str,
    draws: int = DRAWS,
    confidence: float = CONFIDENCE,
    seed: int = SEED,
) -> Difference | str:
    """``a - b`` of ``metric``, averaged over seeds (``a[i]`` and ``b[i]``: one seed's predictions of the
    same test examples), with a paired bootstrap interval; or why there is none (one line)."""
    if not a or len(a) != len(b):
        return "needs the predictions of both rows for the same seeds"
    stats: list[tuple[Statistic, Statistic, int]] = []
    linear: list[np.ndarray | None] = []
    for pa, pb in zip(a, b, strict=True):
        if pa.labels.shape != pb.labels.shape or not np.array_equal(pa.labels, pb.labels):
            return "the two rows' test labels differ, so their predictions cannot be paired"
        sa, sb = statistic(metric, pa), statistic(metric, pb)
        if sa is None or sb is None:
            return f"'{metric}' is not computed from per-example predictions"
        stats.append((sa, sb, len(pa.labels)))
        va, vb = per_example_values(metric, pa), per_example_values(metric, pb)
        linear.append(None if va is None or vb is None else va - vb)
    point = float(np.mean([sa(np.ones((1, n)))[0] - sb(np.ones((1, n)))[0] for sa, sb, n in stats]))
    if not np.isfinite(point):
        return f"'{metric}' is undefined on the test labels"
    rng = np.random.default_rng(seed)
    total = np.zeros(draws)
    for (sa, sb, n), diff in zip(stats, linear, strict=True):  # each seed its own resamples, then averaged
        chunk = max(1, CHUNK_CELLS // n)
        for start in range(0, draws, chunk):
            size = min(chunk, draws - start)
            picked = rng.integers(0, n, (size, n))
            if diff is not None:
                total[start : start + size] += diff[picked].mean(axis=1)
                continue
            picked += n * np.arange(size)[:, None]
            weights = np.bincount(picked.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)
            total[start : start + size] += sa(weights) - sb(weights)
    averaged = total / len(stats)
    defined = averaged[np.isfinite(averaged)]  # a resample may leave an AUROC undefined
    if len(defined) < draws / 2:
        return f"'{metric}' is undefined on most resamples of the test examples"
    tail = 100 * (1 - confidence) / 2
    low, high = (float(v) for v in np.percentile(defined, [tail, 100 - tail]))
    return Difference(point, low, high, verdict_word(low, high), [n for _, _, n in stats], len(defined))


def comparisons(rows: Sequence[Mapping[str, Any]], metric: str) -> list[tuple[str, str, str, str]]:
    """``(group, row, other, why)`` to compare: each product against the best other row of its group (the
    highest defined mean of ``metric``; once per pair: when I2M2 and intra are each other's best, only
    I2M2's), I2M2 against the ``logistic`` baseline when the run has it, and intra against each inter
    row."""
    pairs: list[tuple[str, str, str, str]] = []
    for group in dict.fromkeys(r["group"] for r in rows):
        members = [r for r in rows if r["group"] == group]
        means = {r["method"]: (r["metrics"].get(metric) or {}).get("mean") for r in members}
        defined = {m: v for m, v in means.items() if isinstance(v, int | float) and np.isfinite(v)}
        products = [m for m in means if method_base(m) in STAGE2_METHODS]
        for method in sorted(products, key=lambda m: method_base(m) != "i2m2"):  # I2M2's verdict first
            others = {m: v for m, v in defined.items() if m != method}
            best = max(others, key=lambda m: others[m]) if others else None  # the first of equal means
            if best is not None and (group, best, method) not in {p[:3] for p in pairs}:
                pairs.append((group, method, best, "best other row"))
        if LOGISTIC in means:
            for method in means:
                if method_base(method) == "i2m2" and (group, method, LOGISTIC) not in {p[:3] for p in pairs}:
                    pairs.append((group, method, LOGISTIC, "the plain baseline"))
        if "intra" in means:
            for method in means:
                if method_base(method) == "inter" and (group, "intra", method) not in {p[:3] for p in pairs}:
                    pairs.append((group, "intra", method, "intra vs inter"))
    return pairs


def run_verdicts(
    run_dir: Path,
    rows: Sequence[Mapping[str, Any]],
    metric: str,
    seeds: Sequence[int],
    draws: int = DRAWS,
) -> dict[str, Any]:
    """The verdicts of a run folder's rows from its saved predictions (results.json's ``verdicts``)."""
    level = 100 * CONFIDENCE
    found: list[dict[str, Any]] = []
    cache: dict[tuple[str, str, int], Predictions | None] = {}

    def predictions(group: str, method: str, seed: int) -> Predictions | None:
        key = (group, method, seed)
        if key not in cache:
            try:
                cache[key] = load_predictions(predictions_path(run_dir, group, method, seed))
            except DataError:
                cache[key] = None
        return cache[key]

    for group, method, other, why in comparisons(rows, metric):
        entry: dict[str, Any] = {"group": group, "method": method, "against": other, "why": why}
        pairs = [(predictions(group, method, s), predictions(group, other, s)) for s in seeds]
        both = [(s, pa, pb) for s, (pa, pb) in zip(seeds, pairs, strict=True) if pa and pb]
        entry["seeds"] = [s for s, _, _ in both]
        if not both:
            result: Difference | str = "no saved predictions of both rows"
        else:
            result = paired_difference([p[1] for p in both], [p[2] for p in both], metric, draws)
        if isinstance(result, str):
            entry |= {"difference": None, "ci_low": None, "ci_high": None, "verdict": None, "note": result}
        else:
            entry |= result.as_dict()
        found.append(entry)
    return {
        "metric": metric,
        "confidence": CONFIDENCE,
        "method": METHOD_TEXT.format(draws=draws, level=level),
        "comparisons": found,
    }


def signed(value: float, scale: float = 100.0) -> str:
    return f"{scale * value:+.2f}"


def verdict_table(verdicts: Mapping[str, Any]) -> str:
    """Markdown: one line per comparison, the difference and interval in points and the verdict in bold
    (an accuracy difference also in test examples, per seed)."""
    metric = verdicts["metric"]
    level = round(100 * verdicts["confidence"])
    grouped = any(c["group"] for c in verdicts["comparisons"])
    head = "| comparison |" + (" group |" if grouped else "")
    lines = [
        f"{head} difference ({metric}, points) | {level}% interval | verdict |",
        "|---|" + ("---|" if grouped else "") + "---|---|---|",
    ]
    for c in verdicts["comparisons"]:
        name = f"{c['method']} − {c['against']} ({c['why']})"
        where = f" {c['group']} |" if grouped else ""
        if c["verdict"] is None:
            lines.append(f"| {name} |{where} n/a | n/a | n/a: {c['note']} |")
            continue
        diff = signed(c["difference"])
        if metric == "acc" and c.get("test_examples"):
            count = c["difference"] * float(np.mean(c["test_examples"]))
            diff += f" ({count:+.1f} of {round(float(np.mean(c['test_examples'])))} examples)"
        interval = f"[{signed(c['ci_low'])}, {signed(c['ci_high'])}]"
        lines.append(f"| {name} |{where} {diff} | {interval} | **{c['verdict']}** |")
    return "\n".join(lines) + "\n"
