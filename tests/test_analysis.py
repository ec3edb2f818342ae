"""``i2m2 analyze`` on a hand-made run folder whose every answer is known, and on bad input."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from i2m2.analysis.entropy import entropy_stats, label_entropy, predictive_entropy
from i2m2.analysis.groups import example_group_stats, reference_levels, run_group_stats
from i2m2.analysis.missing import missing_results
from i2m2.analysis.report import ANALYSES, FOLDER_ANALYSES, GENERIC, analyze_run
from i2m2.analysis.rescue import FINETUNED, STAGE1, rescue_counts
from i2m2.analysis.run_data import load_run
from i2m2.cli import main
from i2m2.errors import DataError, UserError
from i2m2.runs.plots import CHANCE, MAJORITY
from i2m2.runs.predictions import Predictions, predictions_path, save_predictions

C = 3
LABELS = np.array([0, 1, 2, 0, 1, 2])
EXAMPLE_GROUPS = np.array([0, 0, 1, 1, 2, 2])
UNIFORM = np.full((len(LABELS), C), math.log(1 / C))
# H([0.5, 0.25, 0.25]) = 1.5 ln 2: both the test labels' entropy and that of a "half-sure" prediction.
H_HALF = 1.5 * math.log(2)


def half_sure(predicted: list[int]) -> np.ndarray:
    """Log-probabilities putting 0.5 on each predicted class and 0.25 on the two others."""
    probs = np.full((len(predicted), C), 0.25)
    probs[np.arange(len(predicted)), predicted] = 0.5
    return np.log(probs)


# Predicted classes, chosen so that every count below is known (labels 0 1 2 0 1 2).
STAGE1_PREDS = {
    "unimodal:a": [0, 0, 0, 1, 1, 1],  # right on 0 and 4
    "unimodal:b": [1, 1, 0, 1, 0, 0],  # right on 1
    "inter": [1, 0, 1, 1, 0, 2],  # right on 5 -> every stage-1 model wrong on 2 and 3
}
I2M2_PREDS = {0: [0, 0, 2, 0, 1, 0], 1: [0, 1, 2, 0, 1, 2]}  # seed 0 right on 0 2 3 4; seed 1 on all


def write_run(
    root: Path, seeds: tuple[int, ...] = (0, 1), groups: tuple[str, ...] = ("",), predictions: bool = True
) -> Path:
    """A run folder in exactly the format of ``i2m2 run``: results.json plus predictions/*.npz."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    methods = ["unimodal:a", "unimodal:b", "intra", "inter", "i2m2"]
    for group in groups:
        for method in methods:
            accs = []
            for seed in seeds:
                p = make_predictions(method, seed)
                accs.append(float((p.log_probs.argmax(1) == p.labels).mean()))
                if predictions:
                    save_predictions(predictions_path(root, group, method, seed), p)
            metric = {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "per_seed": accs}
            rows.append({"method": method, "group": group, "metrics": {"acc": metric}})
    config = {
        "modalities": ["a", "b"],
        "num_classes": C,
        "groups": list(groups),
        "group_names": ["g0", "g1", "g2"],
        "seeds": list(seeds),
        "methods": methods,
        "monitor": "acc",
    }
    results = {"experiment": "handmade", "rows": rows, "config": config, "versions": {"i2m2": "test"}}
    (root / "results.json").write_text(json.dumps(results))
    return root


def make_predictions(method: str, seed: int) -> Predictions:
    if method in STAGE1_PREDS:
        return Predictions(
            LABELS, half_sure(STAGE1_PREDS[method]), {method.split(":")[-1]: half_sure(STAGE1_PREDS[method])}
        )
    product = half_sure(I2M2_PREDS[seed])
    withheld = {
        "a": half_sure([1, 1, 2, 0, 0, 0]),  # without a: right on 2 and 3 -> 1/2
        "b": half_sure(list(LABELS)),  # without b: all right
    }
    if method == "intra":
        experts = {"a": half_sure(STAGE1_PREDS["unimodal:a"]), "b": UNIFORM}
        return Predictions(LABELS, half_sure(list(LABELS)), experts, withheld, EXAMPLE_GROUPS)
    # I2M2's fine-tuned experts: a is always right, b and inter are uniform (argmax picks class 0).
    experts = {"a": half_sure(list(LABELS)), "b": UNIFORM, "inter": UNIFORM}
    return Predictions(LABELS, product, experts, withheld, EXAMPLE_GROUPS)


def listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_entropy_values():
    assert predictive_entropy(UNIFORM) == pytest.approx(math.log(3))
    assert predictive_entropy(half_sure([0, 1, 2])) == pytest.approx(H_HALF)
    with np.errstate(divide="ignore"):
        sure = np.log(np.array([[1.0, 0.0, 0.0]]))  # log 0 = -inf must count as 0, not NaN
    assert predictive_entropy(sure) == pytest.approx(0.0)
    assert label_entropy(LABELS, C) == pytest.approx(math.log(3))
    assert label_entropy(np.array([0, 1, 2, 0]), C) == pytest.approx(H_HALF)
    assert label_entropy(np.array([1, 1]), 5) == pytest.approx(0.0)


def test_entropy_table_c7(tmp_path: Path):
    run = load_run(write_run(tmp_path / "run"))
    stats = {s.name: s for s in entropy_stats(run)}
    assert list(stats) == ["H(y)", "H(ŷ | a)", "H(ŷ | b)", "H(ŷ | inter)", "H(ŷ | i2m2)"]
    assert stats["H(y)"].mean == pytest.approx(math.log(3), abs=1e-3)
    assert stats["H(ŷ | a)"].mean == pytest.approx(H_HALF, abs=2e-3)  # float16 files
    assert stats["H(ŷ | b)"].mean == pytest.approx(math.log(3), abs=2e-3)
    assert stats["H(ŷ | i2m2)"].std == pytest.approx(0.0, abs=1e-6)
    assert {s.method for s in stats.values()} == {"i2m2"}  # only I2M2's fine-tuned experts


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


def test_run_groups(tmp_path: Path):
    run = load_run(write_run(tmp_path / "run", groups=("easy", "hard")))
    stats = {(s.group, s.method): s for s in run_group_stats(run)}
    assert set(stats) == {(g, m) for g in ("easy", "hard") for m in run.methods}
    assert stats[("hard", "unimodal:a")].mean == pytest.approx(2 / 6)
    written = analyze_run(run.path)
    names = {p.name for p in written}
    assert {"groups_runs.png", "groups_easy.png", "groups_hard.png", "entropy_easy_i2m2.png"} <= names


def test_missing_modality(tmp_path: Path):
    run = load_run(write_run(tmp_path / "run"))
    pairs = {(r.method, r.name): r for r in missing_results(run)}
    result = pairs[("i2m2", "a")]
    assert result.stat is not None and result.stat.per_seed == [0.5, 0.5]  # the saved withheld__a
    ref = result.reference
    assert ref is not None and ref.method == "unimodal:b" and ref.per_seed == pytest.approx([1 / 6, 1 / 6])
    result = pairs[("i2m2", "b")]
    assert result.stat is not None and result.stat.per_seed == [1.0, 1.0]
    assert result.reference is not None and result.reference.method == "unimodal:a"
    assert result.reference.per_seed == pytest.approx([2 / 6, 2 / 6])
    assert ("intra", "a") in pairs
    # inter reads both modalities: withholding one leaves no expert, said instead of a number
    assert pairs[("inter", "a")].stat is None and "no expert left" in pairs[("inter", "a")].note


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


def test_out_folder(tmp_path: Path):
    root = write_run(tmp_path / "run")
    written = analyze_run(root, tmp_path / "elsewhere")
    assert written and all(p.parent == tmp_path / "elsewhere" for p in written)
    assert not (root / "analysis").exists()


def record_analyses(root: Path, analyses: object) -> None:
    """Set results.json's config 'analyses', as 'i2m2 run' records what the experiment declared."""
    results = json.loads((root / "results.json").read_text())
    results["config"]["analyses"] = analyses
    (root / "results.json").write_text(json.dumps(results))


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
