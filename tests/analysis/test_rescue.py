"""Rescue counts: examples every stage-1 model got wrong that the product gets right, and the converse."""

from __future__ import annotations

import json
import math
from pathlib import Path

from i2m2.analysis.missing import missing_results
from i2m2.analysis.rescue import FINETUNED, STAGE1, rescue_counts
from i2m2.analysis.run_data import load_run
from tests.helpers.analysis import write_run


def test_rescue_counts(tmp_path: Path):
    run = load_run(write_run(tmp_path / "run"))
    counts = {(c.experts, c.seed): c for c in rescue_counts(run)}
    seed0 = counts[(STAGE1, 0)]
    assert (seed0.n, seed0.all_wrong, seed0.rescued, seed0.some_right, seed0.lost) == (6, 2, 2, 4, 2)
    assert seed0.rescue_rate == 1.0 and seed0.loss_rate == 0.5
    seed1 = counts[(STAGE1, 1)]
    assert (seed1.rescued, seed1.lost) == (2, 0)
    finetuned = counts[(FINETUNED, 0)]  # expert a is always right: nothing to rescue, 2 lost
    assert (finetuned.all_wrong, finetuned.rescued, finetuned.lost) == (0, 0, 2)
    assert math.isnan(finetuned.rescue_rate)


def test_stage1_predictions_without_their_rows(tmp_path: Path):
    """A run of ``--methods i2m2`` still trained (and saved) the stage-1 models it started from."""
    root = write_run(tmp_path / "run")
    results = json.loads((root / "results.json").read_text())
    results["rows"] = [r for r in results["rows"] if r["method"] == "i2m2"]
    (root / "results.json").write_text(json.dumps(results))
    run = load_run(root)
    assert run.methods == ["i2m2"]
    counts = {(c.experts, c.seed): c for c in rescue_counts(run)}
    assert counts[(STAGE1, 0)].rescued == 2
    assert all(r.reference is not None for r in missing_results(run) if r.withheld)
