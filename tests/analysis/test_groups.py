"""Accuracy per example group and per run group, with chance and majority references, on a hand-made run."""

from __future__ import annotations

from pathlib import Path

import pytest

from i2m2.analysis.groups import example_group_stats, reference_levels, run_group_stats
from i2m2.analysis.report import analyze_run
from i2m2.analysis.run_data import load_run
from i2m2.runs.plots import CHANCE, MAJORITY
from tests.helpers.analysis import write_run


def test_per_group_accuracy(tmp_path: Path):
    run = load_run(write_run(tmp_path / "run"))
    stats = {(s.method, s.name): s for s in example_group_stats(run, "")}
    assert stats[("i2m2", "g0")].per_seed == [0.5, 1.0]
    assert stats[("i2m2", "g1")].per_seed == [1.0, 1.0]
    assert stats[("i2m2", "g2")].per_seed == [0.5, 1.0]
    assert stats[("i2m2", "g0")].mean == 0.75 and stats[("i2m2", "g0")].std == 0.25
    assert stats[("i2m2", "all")].per_seed == pytest.approx([4 / 6, 1.0])
    assert run_group_stats(run) == []  # one run group: nothing to compare across
    # Reference lines per group: labels 0 1 | 2 0 | 1 2 -> every group's majority class holds half.
    levels = reference_levels(run, "", ["all", "g0", "g1", "g2"])
    assert levels[CHANCE] == pytest.approx([100 / 3] * 4)
    assert levels[MAJORITY] == pytest.approx([100 / 3, 50.0, 50.0, 50.0])


@pytest.mark.slow
def test_run_groups(tmp_path: Path):
    run = load_run(write_run(tmp_path / "run", groups=("easy", "hard")))
    stats = {(s.group, s.method): s for s in run_group_stats(run)}
    assert set(stats) == {(g, m) for g in ("easy", "hard") for m in run.methods}
    assert stats[("hard", "unimodal:a")].mean == pytest.approx(2 / 6)
    written = analyze_run(run.path)
    names = {p.name for p in written}
    assert {"groups_runs.png", "groups_easy.png", "groups_hard.png", "entropy_easy_i2m2.png"} <= names
