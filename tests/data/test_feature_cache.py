"""The feature cache: features computed once, rebuilt when truncated or when the backbone changes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from i2m2.data.feature_cache import cached_features, feature_path
from i2m2.data.vqa_vs import ANSWER_COUNTS, ANSWER_LABELS, load_vqa_vs, soft_targets
from i2m2.models.backbones import text_backbone, vision_backbone
from i2m2.models.heads import feature_experts
from i2m2.models.i2m2 import I2M2
from i2m2.models.soft_targets import soft_target_cross_entropy
from tests.helpers.vqa_vs import write_vqa_vs


@pytest.fixture
def models(tiny_towers: dict[str, Path]) -> dict[str, Path]:
    """The shared tiny BERT and ViT folders (conftest.tiny_towers)."""
    return tiny_towers


def test_cache_reused_and_truncated_file_rebuilt(tmp_path: Path) -> None:
    calls = []

    def compute() -> np.ndarray:
        calls.append(1)
        return np.arange(12, dtype=np.float32).reshape(4, 3)

    expected = compute()
    calls.clear()
    first = cached_features(tmp_path, "k1", "train", "image", compute, rows=4)
    second = cached_features(tmp_path, "k1", "train", "image", compute, rows=4)
    assert len(calls) == 1 and np.array_equal(first, expected) and isinstance(second, np.memmap)
    path = feature_path(tmp_path, "k1", "train", "image")
    path.write_bytes(path.read_bytes()[:-8])  # a truncated copy
    with pytest.warns(UserWarning, match="feature cache"):
        rebuilt = cached_features(tmp_path, "k1", "train", "image", compute, rows=4)
    assert len(calls) == 2 and np.array_equal(rebuilt, expected)
    cached_features(tmp_path, "k2", "train", "image", compute, rows=4)  # another backbone: its own file
    assert len(calls) == 3


def test_vqa_vs_features_computed_once_and_invalidated(models: dict[str, Path], tmp_path: Path) -> None:
    root = write_vqa_vs(tmp_path / "vqa")
    copy = tmp_path / "vit"
    shutil.copytree(models["vision"], copy)
    vision, text = vision_backbone(copy), text_backbone(models["text"], max_length=8)
    calls: list[int] = []
    vision.register_forward_hook(lambda *_: calls.append(1))
    splits, answers = load_vqa_vs(root, min_count=2, vision=vision, text=text)
    assert len(calls) == 3  # one batch per split (3 distinct images at most)
    inputs, _ = splits.train[0]
    assert inputs["image"].shape == (12,) and inputs["question"].shape == (16,)
    load_vqa_vs(root, min_count=2, vision=vision, text=text)
    assert len(calls) == 3  # second load: read from the cache
    torch.manual_seed(1)
    transformers.ViTModel(vision.model.config).save_pretrained(copy)  # new weights, same folder
    changed = vision_backbone(copy)
    changed.register_forward_hook(lambda *_: calls.append(1))
    load_vqa_vs(root, min_count=2, vision=changed, text=text)
    assert len(calls) == 6

    unimodal, inter = feature_experts({"image": 12, "question": 16}, len(answers), hidden=8)
    model = I2M2(unimodal, inter, num_classes=len(answers))
    batch = [splits.train[i][0] for i in range(4)]
    stacked = {k: torch.stack([b[k] for b in batch]) for k in batch[0]}
    targets = soft_targets(stacked.pop(ANSWER_LABELS), stacked.pop(ANSWER_COUNTS), len(answers))
    log_probs = torch.log_softmax(model(stacked), dim=-1)
    loss = soft_target_cross_entropy(log_probs, targets)
    assert torch.isfinite(loss) and loss > 0
