"""VQA's objective: soft-target cross-entropy on the product, and the VQA score on IID and every OOD subset.

Batches carry, next to the modalities, each question's human answers (``answer_labels``/``answer_counts``,
``(B, 10)``) and, on the VQA-VS test split, its OOD-subset membership (``ood_subsets``, ``(B, 9)`` bool).
:meth:`VQAObjective.split_batch` pulls them out, so no expert sees them.

* Loss: :func:`~i2m2.models.soft_targets.soft_target_cross_entropy` of the product's normalized
  log-probabilities against ``min(count / 3, 1)`` normalized per question (the authors' code applied binary
  cross-entropy to log-probabilities, which treats them as independent logits).
* Metrics (torchmetrics, so they sync under DDP): ``vqa_score`` (the whole split: on test, IID), and on the
  test split ``ood_<subset>`` for each of the nine subsets and ``ood``, the mean of the nine, all from
  one pass. The monitored metric is ``vqa_score`` on validation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection

from i2m2.data.vqa_vs import ANSWER_COUNTS, ANSWER_LABELS, soft_targets, vqa_score
from i2m2.models.soft_targets import soft_target_cross_entropy
from i2m2.models.validation import check_labels
from i2m2.objectives import Objective

OOD_KEY = "ood_subsets"


@dataclass
class VQATarget:
    """What the loss and metrics need of one batch."""

    labels: Tensor  # (B,) the most common in-vocabulary answer (for predictions files and analyses)
    answer_labels: Tensor  # (B, 10) int64, -1 padded
    answer_counts: Tensor  # (B, 10) float
    ood: Tensor | None = None  # (B, S) bool OOD-subset membership (test split only)


def question_scores(log_probs: Tensor, target: VQATarget) -> Tensor:
    """``(B,)`` VQA score of each question's top answer."""
    return vqa_score(log_probs.argmax(dim=1), target.answer_labels, target.answer_counts)


class VQAScore(Metric):
    """Mean VQA score over the questions seen, or over those of OOD subset ``subset`` (a column index)."""

    full_state_update = False
    higher_is_better = True
    total: Tensor
    count: Tensor

    def __init__(self, subset: int | None = None) -> None:
        super().__init__()
        self.subset = subset
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, scores: Tensor, ood: Tensor | None) -> None:
        if self.subset is not None:
            if ood is None:
                return
            scores = scores[ood[:, self.subset].bool()]
        self.total += scores.double().sum()
        self.count += len(scores)

    def compute(self) -> Tensor:
        return (self.total / self.count).float() if self.count > 0 else torch.tensor(float("nan"))


class MeanOverSubsets(Metric):
    """The mean over ``n`` OOD subsets of each subset's mean VQA score ("OOD" of Table 3)."""

    full_state_update = False
    higher_is_better = True
    total: Tensor
    count: Tensor

    def __init__(self, n: int) -> None:
        super().__init__()
        self.add_state("total", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, scores: Tensor, ood: Tensor | None) -> None:
        if ood is None:
            return
        member = ood.bool().double()
        self.total += (member * scores.double().unsqueeze(1)).sum(dim=0)
        self.count += member.sum(dim=0)

    def compute(self) -> Tensor:
        return (self.total / self.count).mean().float()  # an empty subset makes it NaN, visibly


class VQAObjective(Objective):
    """Soft-target cross-entropy and VQA scores (see the module docstring).

    Args:
        subsets: names of the OOD subsets, in the column order of the ``ood_subsets`` batch key.
    """

    num_tasks: int | None = None  # one answer distribution per question

    def __init__(self, subsets: Sequence[str] = ()) -> None:
        self.subsets = tuple(subsets)

    def split_batch(self, inputs: dict[str, Tensor], labels: Tensor) -> tuple[dict[str, Tensor], VQATarget]:
        rest = dict(inputs)
        try:
            answer_labels, answer_counts = rest.pop(ANSWER_LABELS), rest.pop(ANSWER_COUNTS)
        except KeyError as err:
            raise ValueError(f"VQA batches need '{ANSWER_LABELS}' and '{ANSWER_COUNTS}' keys") from err
        return rest, VQATarget(labels, answer_labels, answer_counts, rest.pop(OOD_KEY, None))

    def check_target(self, target: VQATarget, num_classes: int) -> None:
        check_labels(target.labels, num_classes)
        check_labels(target.answer_labels.clamp(min=-1) + 1, num_classes + 1)  # -1 is padding
        if (target.answer_counts < 0).any():
            raise ValueError("answer_counts: expected counts >= 0")
        if target.ood is not None and target.ood.shape[1:] != (len(self.subsets),):
            raise ValueError(f"{OOD_KEY}: expected (B, {len(self.subsets)}), got {tuple(target.ood.shape)}")

    def loss(self, log_probs: Tensor, target: VQATarget) -> Tensor:
        targets = soft_targets(target.answer_labels, target.answer_counts, log_probs.shape[1])
        return soft_target_cross_entropy(log_probs, targets)

    def metrics(self, num_classes: int, prefix: str) -> MetricCollection:
        metrics: dict[str, Metric | MetricCollection] = {"vqa_score": VQAScore()}
        if prefix.startswith("test") and self.subsets:  # only the test split has OOD subsets
            metrics["ood"] = MeanOverSubsets(len(self.subsets))
            metrics |= {f"ood_{name}": VQAScore(j) for j, name in enumerate(self.subsets)}
        # compute groups would merge subsets whose states happen to match after the first batch
        return MetricCollection(metrics, prefix=prefix, compute_groups=False)

    def update(self, metrics: MetricCollection, log_probs: Tensor, target: VQATarget) -> None:
        metrics.update(question_scores(log_probs, target), target.ood)

    def batch_size(self, target: VQATarget) -> int:
        return len(target.labels)

    def example_scores(self, log_probs: Tensor, target: VQATarget) -> Tensor:
        """Each question's VQA score (the human answers are not in the saved predictions)."""
        return question_scores(log_probs, target)
