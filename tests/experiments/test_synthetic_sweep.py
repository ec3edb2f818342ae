"""``i2m2 run synthetic-sweep`` end to end on a 2 x 2 grid, then the heatmap from ``i2m2 analyze``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from i2m2.analysis.report import analyze_run
from i2m2.analysis.run_data import load_run
from i2m2.analysis.sweep import sweep_cells
from i2m2.catalog import get_experiment
from i2m2.errors import UserError
from i2m2.orchestration.comparison import run_experiment


@pytest.mark.slow
def test_sweep_end_to_end(tmp_path: Path):
    experiment = get_experiment(
        "synthetic-sweep", intra=[0.0, 1.5], inter=[0.0, 3.0], hidden=8, n_train=64, n_val=32, n_test=64
    )
    assert experiment.groups == (
        "intra=0 inter=0",
        "intra=0 inter=3",
        "intra=1.5 inter=0",
        "intra=1.5 inter=3",
    )
    rows = run_experiment(experiment, tmp_path / "run", seeds=2, max_epochs=1, epoch_progress=False)
    assert {r["method"] for r in rows} == {"intra", "inter", "i2m2"}  # the sweep's default methods
    config = json.loads((tmp_path / "run" / "results.json").read_text())["config"]
    assert config["levels"]["intra=0 inter=0"]["chance"] == 0.25
    assert 0.25 <= config["levels"]["intra=0 inter=0"]["majority"] < 1
    assert (
        "seeds" in config["title"] and "chance (1/C) 25.0%" in (tmp_path / "run" / "results.md").read_text()
    )
    written = {p.name for p in analyze_run(tmp_path / "run")}
    assert {"sweep.png", "sweep.md", "sweep.csv"} <= written
    png = (tmp_path / "run" / "analysis" / "sweep.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) < 200_000
    cells = sweep_cells(load_run(tmp_path / "run"))
    assert len(cells) == 4 and all(len(c.diffs) == 2 for c in cells)


def test_sweep_options_checked():
    with pytest.raises(UserError, match="given twice"):
        get_experiment("synthetic-sweep", intra=[1.0, 1.0])
    with pytest.raises(UserError, match=">= 0"):
        get_experiment("synthetic-sweep", inter=[-1.0])
