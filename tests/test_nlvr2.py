"""NLVR2 reader on a tiny folder in the release's layout, and the simulated nlvr2-shapes set."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
import torch
from PIL import Image

from i2m2.data.nlvr2 import MODALITIES, NUM_CLASSES, load_nlvr2, pair_name, read_nlvr2_split
from i2m2.data.nlvr2_shapes import build_nlvr2_shapes, image_attributes
from i2m2.errors import DataError
from i2m2.models.encoders import PairEncoder
from i2m2.models.encoders.cnn import SmallCNN


def write_nlvr2(root: Path) -> Path:
    """train: 2 pairs in directory 7 (2 statements each); dev and test1: 1 pair, 2 statements, flat."""
    for file, split, pairs in (
        ("train.json", "train", 2),
        ("dev.json", "dev", 1),
        ("test1.json", "test1", 1),
    ):
        lines = []
        for pair in range(pairs):
            folder = root / "images" / split / ("7" if split == "train" else "")
            folder.mkdir(parents=True, exist_ok=True)
            for side in (0, 1):
                Image.new("RGB", (10, 6), (60 * side, 100, 20 * pair)).save(
                    folder / f"{split}-3-{pair}-img{side}.png"
                )
            for sentence, label in ((0, "True"), (1, "False")):
                entry = {"identifier": f"{split}-3-{pair}-{sentence}", "sentence": f"there are {pair} dogs"}
                entry["label"] = label
                if split == "train":
                    entry["directory"] = "7"
                lines.append(json.dumps(entry))
        (root / file).write_text("\n".join(lines) + "\n")
    return root


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


def test_image_attributes_from_questions() -> None:
    questions = (
        ["what color is the circle?", "is there not a red shape?", "what shape is present?"],
        ["blue", "no", "triangle"],
        [0, 1, 1],
    )
    assert image_attributes(questions) == {0: ("circle", "blue"), 1: ("triangle", "red")}


def test_nlvr2_shapes_balanced_per_statement_and_pair(tmp_path: Path) -> None:
    root = build_nlvr2_shapes(tmp_path / "shapes", seed=3, train=40, dev=8, test=8, image_size=32)
    assert "SIMULATED" in (root / "README.txt").read_text()
    for file in ("train.json", "dev.json", "test1.json"):
        by_statement, by_pair = defaultdict(list), defaultdict(list)
        for line in (root / file).read_text().splitlines():
            entry = json.loads(line)
            truth = entry["label"] == "True"
            by_statement[entry["sentence"]].append(truth)
            by_pair[pair_name(entry["identifier"])].append(truth)
        for groups in (by_statement, by_pair):
            assert all(2 * sum(v) == len(v) for v in groups.values())
    splits = load_nlvr2(root, image_size=32, preload=True)
    assert len(splits.train) == 40 and len(splits.test) == 8
    assert float(splits.train.labels.float().mean()) == 0.5
    batch = torch.stack([splits.train[i][0]["images"] for i in range(4)])
    encoder = PairEncoder(SmallCNN(channels=(8, 16), out_features=12, image_size=32))
    assert encoder(batch).shape == (4, 24)
