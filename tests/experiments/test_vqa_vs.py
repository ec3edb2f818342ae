"""``i2m2 run vqa-vs`` end to end on a tiny fixture folder: every OOD subset scored, analyses, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from i2m2.cli.main import main
from i2m2.data.vqa_vs import OOD_SUBSETS, read_vqa_vs, vqa_score
from i2m2.objectives.vqa import OOD_KEY
from i2m2.runs.predictions import load_predictions, predictions_path
from tests.helpers.vqa_vs import write_vqa_vs


@pytest.fixture
def towers(tiny_towers: dict[str, Path]) -> dict[str, Path]:
    """The shared tiny BERT and ViT folders (conftest.tiny_towers)."""
    return tiny_towers


def run_vqa_vs(data: Path, towers: dict[str, Path], out: Path, *extra: str) -> int:
    backbones = ["--vision-backbone", str(towers["vision"]), "--text-backbone", str(towers["text"])]
    quick = ["--min-count", "2", "--seeds", "1", "--max-epochs", "1"]
    return main(["run", "vqa-vs", "--data-dir", str(data), *backbones, *quick, "--out", str(out), *extra])


@pytest.mark.slow
def test_vqa_vs_end_to_end_scores_every_ood_subset(towers: dict[str, Path], tmp_path: Path) -> None:
    data = write_vqa_vs(tmp_path / "vqa-vs")
    out = tmp_path / "run"
    assert run_vqa_vs(data, towers, out) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in results["rows"]] == [
        "unimodal:image",
        "unimodal:question",
        "intra",
        "inter",
        "i2m2",
    ]
    # the verdicts resample each question's VQA score, saved with the predictions; they match the table
    verdicts = results["verdicts"]
    assert verdicts["metric"] == "vqa_score" and verdicts["comparisons"]
    means = {r["method"]: r["metrics"]["vqa_score"]["mean"] for r in results["rows"]}
    for c in verdicts["comparisons"]:
        assert c["verdict"] is not None, c.get("note")
        assert c["difference"] == pytest.approx(means[c["method"]] - means[c["against"]], abs=1e-5)
    splits, _ = read_vqa_vs(data, min_count=2)  # the run's default: raw strings, as the official scorer
    test = splits["test"]
    for row in results["rows"]:
        metrics = {k: v["mean"] for k, v in row["metrics"].items()}
        subsets = [metrics[f"ood_{name}"] for name in OOD_SUBSETS]  # all nine, from one run
        assert metrics["ood"] == pytest.approx(float(np.mean(subsets)))
        # the same scores recomputed by hand from the saved predictions and the answer files
        p = load_predictions(predictions_path(out, "", row["method"], 0))
        assert p.groups is not None and p.groups.shape == (4, 9) and p.groups.dtype == bool
        scores = vqa_score(
            torch.from_numpy(p.log_probs.argmax(axis=1)), test.answer_labels, test.answer_counts
        )
        assert metrics["vqa_score"] == pytest.approx(float(scores.mean()), abs=1e-6)
        for j, name in enumerate(OOD_SUBSETS):
            assert metrics[f"ood_{name}"] == pytest.approx(float(scores[p.groups[:, j]].mean()), abs=1e-6)
    # what the experiment declared is recorded, and 'i2m2 analyze' runs exactly that
    assert results["config"]["analyses"][-2:] == ["ood_splits", "examples_vqa_vs"]
    assert main(["analyze", str(out)]) == 0
    analysis = out / "analysis"
    assert (analysis / "ood_splits.png").read_bytes()[:4] == b"\x89PNG"
    table = (analysis / "ood_splits.md").read_text()
    assert "| i2m2 |" in table and "QT+KW+KO" in table and "OOD" in table
    page = (analysis / "examples.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "Figure 5" in page
    assert "data:image/png;base64," in page or "0 of 4 test examples" in page
    assert (analysis / "entropy.md").is_file() and (analysis / "rescue.md").is_file()
    groups = (analysis / "groups.md").read_text()
    assert "KW+KO" in groups  # the (N, 9) membership read as nine named groups, not ids 0/1


def test_bad_input_is_one_line_naming_the_file(
    towers: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def fails(data: Path, expected: str, vision: Path | None = None) -> None:
        chosen = towers if vision is None else {**towers, "vision": vision}
        assert run_vqa_vs(data, chosen, tmp_path / f"out-{expected[:8]}") == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, err

    missing_image = write_vqa_vs(tmp_path / "a")
    (missing_image / "images" / "val2014" / f"COCO_val2014_{3:012d}.jpg").unlink()
    fails(missing_image, "COCO_train2014_000000000003.jpg")

    stray = write_vqa_vs(tmp_path / "b")
    ood = stray / "OOD-Test" / "KO" / "OOD-Test-KO-Ques.json"
    ood.write_text(json.dumps([{"question_id": 100}]))  # a training question
    fails(stray, str(ood))

    disagree = write_vqa_vs(tmp_path / "c")
    answers = disagree / "Val" / "Val-Ans.json"
    answers.write_text(json.dumps(json.loads(answers.read_text())[:1]))
    fails(disagree, str(answers))

    no_weights = tmp_path / "vit-without-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((towers["vision"] / "config.json").read_text())
    fails(write_vqa_vs(tmp_path / "d"), str(no_weights), vision=no_weights)


def test_ood_key_travels_with_the_test_split(towers: dict[str, Path], tmp_path: Path) -> None:
    from i2m2.experiments.vqa_vs import vqa_vs

    data = write_vqa_vs(tmp_path / "e")
    experiment = vqa_vs(data, towers["vision"], towers["text"], min_count=2, normalize_answers=True)
    assert "answers normalized" in experiment.description  # said wherever results are shown
    assert vqa_vs(data, towers["vision"], towers["text"], min_count=2).classes("") == 2  # raw strings
    splits = experiment.load_data("", None, 0)
    inputs, labels = splits.test.__getitems__([0, 3])
    assert inputs[OOD_KEY].shape == (2, 9) and "answer_counts" in inputs and len(labels) == 2
    assert set(splits.test.modalities) == {"image", "question"} and experiment.classes("") == 3
    assert math.isclose(
        float(inputs["image"].abs().sum()),
        float(splits.test[0][0]["image"].abs().sum()) + float(splits.test[3][0]["image"].abs().sum()),
        rel_tol=1e-5,
    )
