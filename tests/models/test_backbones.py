"""Pretrained backbones from local folders (tiny random models): pooling, fine-tuning, cache keys."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from i2m2.errors import DataError, UserError
from i2m2.models.backbones import backbone_key, text_backbone, vision_backbone
from i2m2.models.heads import MLPHead


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
