"""The simulated nlvr2-shapes set: balanced per statement and per pair, readable by the NLVR2 loader."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import torch

from i2m2.data.nlvr2 import load_nlvr2, pair_name
from i2m2.data.nlvr2_shapes import build_nlvr2_shapes, image_attributes
from i2m2.models.encoders import PairEncoder
from i2m2.models.encoders.cnn import SmallCNN


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
