"""``i2m2 run nlvr2`` end to end on the simulated shapes set, and its Figure 5 page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from i2m2.cli.main import main

pytestmark = pytest.mark.slow  # a whole run, trained for real


def test_nlvr2_shapes_end_to_end_and_figure5_page(tmp_path: Path) -> None:
    data = tmp_path / "shapes"
    assert (
        main(["data", "nlvr2-shapes", "--out", str(data), "--train", "400", "--dev", "200", "--test", "200"])
        == 0
    )
    out = tmp_path / "run"
    argv = ["run", "nlvr2", "--data-dir", str(data), "--seeds", "1", "--out", str(out)]
    assert (
        main([*argv, "--max-epochs", "4", "--methods", "unimodal:images", "unimodal:statement", "i2m2"]) == 0
    )
    rows = {
        r["method"]: r["metrics"]["acc"]["mean"]
        for r in json.loads((out / "results.json").read_text())["rows"]
    }
    # balanced by construction: every pair has a true and a false statement, every statement a true and
    # a false pair, so a model of one modality is at chance whatever it learns
    assert rows["unimodal:images"] == pytest.approx(0.5, abs=0.05)
    assert rows["unimodal:statement"] == pytest.approx(0.5, abs=0.08)
    assert main(["analyze", str(out)]) == 0
    page = (out / "analysis" / "examples.html").read_text()
    assert "stage-1 models trained alone" in page and "test examples are such cases" in page
    # the page's reader comes from the run's recorded analyses; a run written before runs recorded them
    # gets the same analyses (and the same page) from its experiment's name
    results = json.loads((out / "results.json").read_text())
    assert "examples_nlvr2" in results["config"]["analyses"]
    written = sorted(p.name for p in (out / "analysis").iterdir())
    del results["config"]["analyses"]
    (out / "results.json").write_text(json.dumps(results))
    assert main(["analyze", str(out), "--out", str(tmp_path / "legacy")]) == 0
    assert sorted(p.name for p in (tmp_path / "legacy").iterdir()) == written
    assert (tmp_path / "legacy" / "examples.html").read_text() == page
