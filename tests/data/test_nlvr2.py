"""NLVR2 reader on a tiny folder in the release's layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from i2m2.data.nlvr2 import MODALITIES, NUM_CLASSES, load_nlvr2, pair_name, read_nlvr2_split
from i2m2.errors import DataError
from i2m2.models.backbones import text_backbone, vision_backbone
from tests.helpers.nlvr2 import write_nlvr2


@pytest.fixture
def models(tiny_towers: dict[str, Path]) -> dict[str, Path]:
    """The shared tiny BERT and ViT folders (conftest.tiny_towers)."""
    return tiny_towers


def test_pair_name_drops_the_sentence_field() -> None:
    assert pair_name("dev-850-0-1") == "dev-850-0"
    with pytest.raises(ValueError, match="split-set-pair-sentence"):
        pair_name("dev-850")


def test_read_and_load_official_layout(tmp_path: Path) -> None:
    root = write_nlvr2(tmp_path)
    train = read_nlvr2_split(root, "train")
    assert train.labels.tolist() == [1, 0, 1, 0]
    assert train.image_paths[2][1] == root / "images" / "train" / "7" / "train-3-1-img1.png"
    splits = load_nlvr2(root, image_size=8)
    assert splits.num_classes == NUM_CLASSES and len(splits.val) == 2
    inputs, label = splits.train[1]
    assert set(inputs) == set(MODALITIES) and splits.train.modalities == MODALITIES
    assert inputs["images"].shape == (2, 3, 8, 8) and inputs["statement"].dtype == torch.int64
    assert not torch.equal(inputs["images"][0], inputs["images"][1])  # left and right differ
    assert int(label) == 0
    batch, labels = splits.train.__getitems__([1, 2])  # the DataLoader's batched access
    assert batch["images"].shape == (2, 2, 3, 8, 8) and torch.equal(batch["images"][0], inputs["images"])
    assert labels.tolist() == [0, 1]


def test_missing_image_names_the_file(tmp_path: Path) -> None:
    root = write_nlvr2(tmp_path)
    (root / "images" / "dev" / "dev-3-0-img1.png").unlink()
    with pytest.raises(DataError, match=r"dev-3-0-img1\.png: image file not found"):
        load_nlvr2(root)


def test_bad_label_names_file_and_line(tmp_path: Path) -> None:
    root = write_nlvr2(tmp_path)
    lines = (root / "test1.json").read_text().splitlines()
    lines[1] = lines[1].replace('"False"', '"maybe"')
    (root / "test1.json").write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"test1.json:2: not an NLVR2 line"):
        read_nlvr2_split(root, "test")


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
