"""Reading a run for analysis: missing, truncated, corrupt or inconsistent files are one DataError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from i2m2.analysis.report import analyze_run
from i2m2.errors import DataError
from i2m2.runs.predictions import Predictions, predictions_path, save_predictions
from tests.helpers.analysis import LABELS, listing, make_predictions, write_run


def test_not_a_run(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"not a run folder.*results\.json"):
        analyze_run(tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []
    with pytest.raises(DataError, match="no such folder"):
        analyze_run(tmp_path / "missing")


def test_run_without_predictions(tmp_path: Path):
    root = write_run(tmp_path / "run", predictions=False)
    before = listing(root)
    with pytest.raises(DataError, match="no saved test predictions"):
        analyze_run(root)
    assert listing(root) == before


def test_missing_predictions_file(tmp_path: Path):
    root = write_run(tmp_path / "run")
    path = predictions_path(root, "", "inter", 1)
    path.unlink()
    before = listing(root)
    with pytest.raises(DataError, match=f"{path.name}.*not found"):
        analyze_run(root)
    assert listing(root) == before


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_predictions_file(tmp_path: Path, cut: float):
    root = write_run(tmp_path / "run")
    path = predictions_path(root, "", "i2m2", 0)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    before = listing(root)
    with pytest.raises(DataError, match=path.name):
        analyze_run(root)
    assert listing(root) == before


def test_corrupt_inside_the_archive(tmp_path: Path):
    """Damage in a compressed member (not at the end) is also one DataError naming the file."""
    root = write_run(tmp_path / "run")
    path = predictions_path(root, "", "unimodal:a", 0)
    data = bytearray(path.read_bytes())
    for i in range(60, 120):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=path.name):
        analyze_run(root)


def test_inconsistent_results_and_predictions(tmp_path: Path):
    root = write_run(tmp_path / "run")
    other = make_predictions("inter", 0)
    save_predictions(
        predictions_path(root, "", "inter", 0),
        Predictions(LABELS[::-1].copy(), other.log_probs, other.experts),
    )
    with pytest.raises(DataError, match="test labels differ"):
        analyze_run(root)
    (root / "results.json").write_text("{not json")
    with pytest.raises(DataError, match=r"results\.json: not readable JSON"):
        analyze_run(root)
    (root / "results.json").write_text(json.dumps({"rows": []}))
    with pytest.raises(DataError, match="'config'"):
        analyze_run(root)
