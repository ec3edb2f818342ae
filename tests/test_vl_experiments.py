"""``i2m2 run vqa-vs`` / ``i2m2 run nlvr2`` end to end on tiny fixture folders, the VQA objective, bad input
and the VQA-VS / NLVR2 analyses (OOD chart, Figure 5 page)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from i2m2.cli.main import main
from i2m2.data.vqa_vs import OOD_SUBSETS, read_vqa_vs, vqa_score
from i2m2.objectives.vqa import OOD_KEY, VQAObjective
from i2m2.runs.predictions import load_predictions, predictions_path
from test_vqa_vs import write_vqa_vs


@pytest.fixture
def towers(tiny_towers: dict[str, Path]) -> dict[str, Path]:
    """The shared tiny BERT and ViT folders (conftest.tiny_towers)."""
    return tiny_towers


def run_vqa_vs(data: Path, towers: dict[str, Path], out: Path, *extra: str) -> int:
    backbones = ["--vision-backbone", str(towers["vision"]), "--text-backbone", str(towers["text"])]
    quick = ["--min-count", "2", "--seeds", "1", "--max-epochs", "1"]
    return main(["run", "vqa-vs", "--data-dir", str(data), *backbones, *quick, "--out", str(out), *extra])


def test_soft_target_loss_equals_hand_computation() -> None:
    """Answers {0: 4 humans, 2: 1 human}: targets (1, 0, 1/3) normalized to (3/4, 0, 1/4)."""
    log_probs = torch.log_softmax(torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]]), dim=1)
    inputs = {
        "image": torch.zeros(2, 1),
        "answer_labels": torch.tensor([[0, 2] + [-1] * 8, [1] + [-1] * 9]),
        "answer_counts": torch.tensor([[4.0, 1.0] + [0.0] * 8, [2.0] + [0.0] * 9]),
    }
    objective = VQAObjective(OOD_SUBSETS)
    rest, target = objective.split_batch(inputs, torch.tensor([0, 1]))
    assert set(rest) == {"image"}
    expected = (-(0.75 * log_probs[0, 0] + 0.25 * log_probs[0, 2]) - log_probs[1, 1]) / 2
    assert torch.allclose(objective.loss(log_probs, target), expected)
    metrics = objective.metrics(3, "test/")
    target.ood = torch.tensor([[True] * 9, [False] * 8 + [True]])
    objective.update(metrics, log_probs, target)
    scores = {k: float(v) for k, v in metrics.compute().items()}
    # question 0: top answer 0, 4 humans -> 1; question 1: top answer 0 (tie broken low), 0 humans -> 0
    assert scores["test/vqa_score"] == pytest.approx(0.5) and scores["test/ood_QT"] == pytest.approx(1.0)
    assert scores["test/ood_QT+KW+KO"] == pytest.approx(0.5)
    assert scores["test/ood"] == pytest.approx((8 * 1.0 + 0.5) / 9)


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
    splits, _ = read_vqa_vs(data, min_count=2)
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

    experiment = vqa_vs(write_vqa_vs(tmp_path / "e"), towers["vision"], towers["text"], min_count=2)
    splits = experiment.load_data("", None, 0)
    inputs, labels = splits.test.__getitems__([0, 3])
    assert inputs[OOD_KEY].shape == (2, 9) and "answer_counts" in inputs and len(labels) == 2
    assert set(splits.test.modalities) == {"image", "question"} and experiment.classes("") == 3
    assert math.isclose(
        float(inputs["image"].abs().sum()),
        float(splits.test[0][0]["image"].abs().sum()) + float(splits.test[3][0]["image"].abs().sum()),
        rel_tol=1e-5,
    )
