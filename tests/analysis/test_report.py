"""``i2m2 analyze``: the analyses a run records are the ones written; bad input is one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from i2m2.analysis.report import ANALYSES, FOLDER_ANALYSES, GENERIC, analyze_run
from i2m2.analysis.rescue import STAGE1
from i2m2.cli import main
from i2m2.errors import DataError, UserError
from i2m2.runs.predictions import predictions_path, save_predictions
from tests.helpers.analysis import listing, make_predictions, write_run


def test_analyze_run_writes_tables_and_plots(tmp_path: Path):
    root = write_run(tmp_path / "run")
    before = listing(root)
    written = analyze_run(root)
    assert all(p.parent == root / "analysis" and p.is_file() and p.stat().st_size > 0 for p in written)
    names = {p.name for p in written}
    for analysis in ("entropy", "rescue", "groups"):
        assert {f"{analysis}.csv", f"{analysis}.md", f"{analysis}.png"} <= names
    assert {"missing.csv", "missing.md", "missing_withheld1.png"} <= names
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in written if p.suffix == ".png")
    with (root / "analysis" / "rescue.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["rescued"] == "2" and rows[0]["experts"] == STAGE1
    md = (root / "analysis" / "entropy.md").read_text()
    assert "H(ŷ \\| a)" in md and "1.099" in md  # pipes escaped so the markdown table stays intact
    assert "2.0 ± 0.0" in (root / "analysis" / "rescue.md").read_text()
    # The run's own files are untouched; leftovers of atomic writes are gone.
    assert {k: v for k, v in listing(root).items() if not k.startswith("analysis")} == before
    assert not list((root / "analysis").glob(".*.tmp"))


def record_analyses(root: Path, analyses: object) -> None:
    """Set results.json's config 'analyses', as 'i2m2 run' records what the experiment declared."""
    results = json.loads((root / "results.json").read_text())
    results["config"]["analyses"] = analyses
    (root / "results.json").write_text(json.dumps(results))


@pytest.mark.slow
def test_the_analyses_recorded_in_the_run_are_the_ones_run(tmp_path: Path):
    root = write_run(tmp_path / "run")
    legacy = [p.name for p in analyze_run(root, tmp_path / "legacy")]  # no 'analyses': written before them
    record_analyses(root, None)  # an experiment that declares none: the generic ones
    assert [p.name for p in analyze_run(root, tmp_path / "generic")] == legacy
    assert set(GENERIC) <= set(ANALYSES)
    record_analyses(root, ["rescue"])
    rescue = {f"rescue.{ext}" for ext in ("csv", "md", "png")}
    assert {p.name for p in analyze_run(root, tmp_path / "rescue")} == rescue
    record_analyses(root, ["rescue", "entropy"])  # in the declared order
    names = [p.name for p in analyze_run(root, tmp_path / "two")]
    assert names[0].startswith("rescue") and names[-1].startswith("entropy")
    record_analyses(root, [])
    with pytest.raises(UserError, match="nothing to analyze"):
        analyze_run(root)


def test_unknown_analysis_is_one_line_naming_it_and_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    root = write_run(tmp_path / "run")
    record_analyses(root, ["entropy", "figure9"])
    before = listing(root)
    assert main(["analyze", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown analysis 'figure9'" in err and "results.json" in err
    assert all(name in err for name in [*ANALYSES, *FOLDER_ANALYSES])
    assert listing(root) == before  # nothing written
    record_analyses(root, "entropy")  # not a list
    with pytest.raises(DataError, match="list of analysis names"):
        analyze_run(root)


def test_nothing_to_analyze(tmp_path: Path):
    root = tmp_path / "run"
    save_predictions(predictions_path(root, "", "unimodal:a", 0), make_predictions("unimodal:a", 0))
    row = {"method": "unimodal:a", "group": "", "metrics": {}}
    (root / "results.json").write_text(json.dumps({"rows": [row], "config": {"seeds": [0]}}))
    with pytest.raises(UserError, match="nothing to analyze"):
        analyze_run(root)
    assert not (root / "analysis").exists()


def test_cli_reports_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    root = write_run(tmp_path / "run")
    path = predictions_path(root, "", "i2m2", 1)
    path.write_bytes(path.read_bytes()[:100])
    before = listing(root)
    assert main(["analyze", str(root)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and path.name in err
    assert listing(root) == before
    path.unlink()
    save_predictions(path, make_predictions("i2m2", 1))
    assert main(["analyze", str(root)]) == 0
    assert "entropy.csv" in capsys.readouterr().out


def test_file_suffixes_name_group_and_method_without_stray_hyphens():
    from i2m2.analysis.artifacts import file_suffix

    assert file_suffix(2, "all", "i2m2[late]") == "_all_i2m2-late"
    assert file_suffix(2, "", "unimodal:a") == "_all_unimodal-a"
    assert file_suffix(1, "both", "i2m2") == ""
