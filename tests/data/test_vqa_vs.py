"""VQA-VS reader on a tiny folder in the release's layout: vocabulary, soft targets, VQA score, OOD groups."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from i2m2.data.vqa_vs import (
    ANSWER_COUNTS,
    ANSWER_LABELS,
    load_vqa_vs,
    normalize_answer,
    ood_scores,
    read_vqa_vs,
    soft_targets,
    vqa_score,
)
from i2m2.errors import DataError
from tests.helpers.vqa_vs import write_vqa_vs


def test_normalize_answer_hand_cases() -> None:
    assert normalize_answer("Two.") == "2"
    assert normalize_answer("The Dog!") == "dog"
    assert normalize_answer("1,000") == "1000"
    assert normalize_answer("3.5") == "3.5"
    assert normalize_answer("don't  know?") == "don't know"
    assert normalize_answer("black/white") == "black white"


def test_answers_match_as_raw_strings_by_default_as_the_official_scorer(tmp_path: Path) -> None:
    """'two' and '2', 'Yes.' and 'yes' are different answers unless normalization is asked for."""
    _, answers = read_vqa_vs(write_vqa_vs(tmp_path, wrapped=True), min_count=2)
    assert answers == ["no", "yes"]  # raw: no x2, yes x2 ('Yes.' apart); 'two' and '2' once each
    _, normalized = read_vqa_vs(tmp_path, min_count=2, normalize=True)
    assert normalized == ["yes", "2", "no"]


def test_vocabulary_labels_and_soft_targets(tmp_path: Path) -> None:
    splits, answers = read_vqa_vs(write_vqa_vs(tmp_path, wrapped=True), min_count=2, normalize=True)
    # multiple-choice answers in train: yes x3, no x2, 2 x2 ("two" and "2"), red x1 -> red is out
    assert answers == ["yes", "2", "no"]
    train = splits["train"]
    assert len(train) == 8  # every training question has an in-vocabulary human answer ("no")
    # question 0: humans said yes x4, no x3, maybe x3 -> label yes; counts for yes and no only
    assert int(train.labels[0]) == 0
    targets = soft_targets(train.answer_labels[:1], train.answer_counts[:1], len(answers))
    assert torch.allclose(targets, torch.tensor([[1.0, 0.0, 1.0]]))
    # the 'red' question: red is not in the vocabulary, so 'no' (3 humans) is its label
    assert int(train.labels[7]) == 2
    assert splits["test"].ood is not None and splits["test"].ood.shape == (4, 9)


def test_soft_targets_and_vqa_score_by_hand() -> None:
    labels = torch.tensor([[0, 1, -1], [2, -1, -1]])
    counts = torch.tensor([[2.0, 8.0, 0.0], [1.0, 0.0, 0.0]])
    assert torch.allclose(
        soft_targets(labels, counts, 3), torch.tensor([[2 / 3, 1.0, 0.0], [0.0, 0.0, 1 / 3]])
    )
    scores = vqa_score(torch.tensor([0, 2]), labels, counts)
    assert torch.allclose(scores, torch.tensor([2 / 3, 1 / 3]))
    assert torch.allclose(vqa_score(torch.tensor([1, 0]), labels, counts), torch.tensor([1.0, 0.0]))


def test_ood_scores_every_subset_in_one_call() -> None:
    scores = torch.tensor([1.0, 0.0, 0.5, 1.0])
    ood = torch.zeros(4, 9, dtype=torch.bool)
    ood[:2, 0] = True  # QT: mean(1, 0)
    ood[1:, 1:] = True  # the other eight: mean(0, .5, 1)
    result = ood_scores(scores, ood)
    assert result["IID"] == pytest.approx(0.625)
    assert result["QT"] == pytest.approx(0.5)
    assert result["KW"] == pytest.approx(0.5)
    assert result["OOD"] == pytest.approx(0.5)


def test_load_raw_images_and_groups(tmp_path: Path) -> None:
    splits, answers = load_vqa_vs(write_vqa_vs(tmp_path), min_count=2, image_size=16, normalize=True)
    assert splits.num_classes == len(answers) == 3
    inputs, label = splits.test[2]
    assert inputs["image"].shape == (3, 16, 16) and inputs["question"].dtype == torch.int64
    assert inputs[ANSWER_LABELS].shape == (10,) and inputs[ANSWER_COUNTS].shape == (10,)
    assert splits.test.modalities == ("image", "question")
    assert splits.test.groups is not None and splits.test.groups.shape == (4, 9)
    assert splits.test.groups[:, 0].tolist() == [True, False, False, False]
    assert int(label) == 1  # '2'


def test_ood_id_not_in_test_names_the_file(tmp_path: Path) -> None:
    root = write_vqa_vs(tmp_path)
    bad = root / "OOD-Test" / "KOP" / "OOD-Test-KOP-Ques.json"
    bad.write_text(json.dumps([{"question_id": 100}]))  # a training question
    with pytest.raises(DataError, match=r"OOD-Test-KOP-Ques\.json.*not in the IID test"):
        read_vqa_vs(root, min_count=2)


def test_answers_disagreeing_with_questions_name_the_file(tmp_path: Path) -> None:
    root = write_vqa_vs(tmp_path)
    path = root / "Val" / "Val-Ans.json"
    annotations = json.loads(path.read_text())
    annotations[0]["question_id"] = 999
    path.write_text(json.dumps(annotations))
    with pytest.raises(DataError, match=r"Val-Ans\.json: answers disagree"):
        read_vqa_vs(root, min_count=2)


def test_missing_image_names_the_file(tmp_path: Path) -> None:
    root = write_vqa_vs(tmp_path)
    (root / "images" / f"COCO_train2014_{2:012d}.jpg").unlink()
    with pytest.raises(DataError, match=rf"COCO_train2014_{2:012d}\.jpg: image file not found"):
        load_vqa_vs(root, min_count=2)
