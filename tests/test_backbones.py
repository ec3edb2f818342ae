"""Pretrained backbones from local folders (tiny random models from configs), the feature cache, heads."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from i2m2.data.feature_cache import cached_features, feature_path
from i2m2.data.nlvr2 import load_nlvr2
from i2m2.data.vqa_vs import ANSWER_COUNTS, ANSWER_LABELS, load_vqa_vs, soft_targets
from i2m2.errors import DataError, UserError
from i2m2.models.backbones import backbone_key, text_backbone, vision_backbone
from i2m2.models.heads import MLPHead, feature_experts
from i2m2.models.i2m2 import I2M2
from i2m2.models.soft_targets import soft_target_cross_entropy
from test_nlvr2 import write_nlvr2
from test_vqa_vs import write_vqa_vs


@pytest.fixture
def models(tiny_towers: dict[str, Path]) -> dict[str, Path]:
    """The shared tiny BERT and ViT folders (conftest.tiny_towers)."""
    return tiny_towers


def test_towers_pool_to_feature_vectors(models: dict[str, Path]) -> None:
    text = text_backbone(models["text"], pooling="mean", max_length=6)
    ids = text.tokenize(["is it there", "dogs"])
    assert ids.shape == (2, 6) and int(ids[1, -1]) == text.pad_id
    assert text(ids).shape == (2, 16) and text.out_features == 16
    for pooling in ("cls", "pooler"):
        vision = vision_backbone(models["vision"], pooling=pooling)
        assert vision(torch.rand(3, 3, 16, 16)).shape == (3, 12)
    frozen = vision_backbone(models["vision"])
    frozen.train()
    assert not frozen.model.training and not any(p.requires_grad for p in frozen.parameters())


def test_fine_tuning_reaches_the_backbone(models: dict[str, Path]) -> None:
    text = text_backbone(models["text"], trainable=True, max_length=6)
    model = torch.nn.Sequential(text, MLPHead(text.out_features, 3))
    model(text.tokenize(["is it there", "dogs"])).sum().backward()
    grads = [p.grad for p in text.model.parameters() if p.requires_grad]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)


def test_folder_without_weights_names_the_folder(models: dict[str, Path], tmp_path: Path) -> None:
    empty = tmp_path / "no-weights"
    empty.mkdir()
    shutil.copy(models["text"] / "config.json", empty / "config.json")
    with pytest.raises(DataError, match="no-weights: backbone folder without weights"):
        text_backbone(empty)


def test_missing_transformers_says_which_extra(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(UserError, match=r'pip install "i2m2\[vl\]"'):
        vision_backbone(models["vision"])


def test_backbone_key_changes_with_the_model(models: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "vit"
    shutil.copytree(models["vision"], copy)
    before = backbone_key(copy)
    config = json.loads((copy / "config.json").read_text())
    config["layer_norm_eps"] = 1e-5
    (copy / "config.json").write_text(json.dumps(config))
    assert backbone_key(copy) != before


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


def test_nlvr2_pair_features(models: dict[str, Path], tmp_path: Path) -> None:
    root = write_nlvr2(tmp_path / "nlvr2")
    splits = load_nlvr2(root, vision=vision_backbone(models["vision"]), text=text_backbone(models["text"]))
    inputs, label = splits.train[3]
    assert inputs["images"].shape == (2, 12) and inputs["statement"].shape == (16,)
    assert not torch.equal(inputs["images"][0], inputs["images"][1]) and int(label) == 0
    batch, labels = splits.train.__getitems__([3, 0])  # the DataLoader's batched access
    assert torch.equal(batch["images"][0], inputs["images"]) and labels.tolist() == [0, 1]
    subset = splits.train.subset(torch.tensor([3]))
    assert torch.equal(subset[0][0]["statement"], inputs["statement"])
