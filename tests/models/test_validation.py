"""Logit checks: single-task and multi-task shapes."""

from __future__ import annotations

import pytest
import torch

from i2m2.models.validation import check_logits


def test_single_task_model_still_rejects_3d_logits_and_multitask_rejects_2d() -> None:
    with pytest.raises(ValueError, match=r"expected logits of shape \(5, classes\), got \(5, 4, 2\)"):
        check_logits("a", torch.zeros(5, 4, 2), 5, None)
    with pytest.raises(ValueError, match=r"expected logits of shape \(5, 4, classes\), got \(5, 2\)"):
        check_logits("a", torch.zeros(5, 2), 5, None, num_tasks=4)
    with pytest.raises(ValueError, match=r"expected logits of shape \(5, 4, classes\), got \(5, 3, 2\)"):
        check_logits("a", torch.zeros(5, 3, 2), 5, None, num_tasks=4)
    check_logits("a", torch.zeros(5, 4, 2), 5, 2, num_tasks=4)  # the right shape passes
