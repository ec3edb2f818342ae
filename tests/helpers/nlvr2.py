"""A tiny NLVR2 folder in the release's layout (json lines, image pairs)."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image


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
