"""A tiny VQA-VS folder in the release's layout (questions, answers, OOD subsets, COCO image names)."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from i2m2.data.vqa_vs import OOD_SUBSETS

STEMS = {"train": "Training", "val": "Val", "test": "IID-Test"}


def _answers(*pairs: tuple[str, int]) -> list[dict[str, object]]:
    flat = [a for a, n in pairs for _ in range(n)]
    assert len(flat) == 10
    return [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(flat)]


def write_vqa_vs(root: Path, wrapped: bool = False) -> Path:
    """Train: 'yes' x3, 'no' x2, '2' x2 (as 'two'/'2'), 'red' x1 questions; val 2 and test 4 questions."""
    mc = {"train": ["yes", "yes", "Yes.", "no", "no", "two", "2", "red"], "val": ["yes", "no"]}
    mc["test"] = ["yes", "no", "2", "blue"]
    qid = 100
    for split, answers in mc.items():
        questions, annotations = [], []
        for i, answer in enumerate(answers):
            image = 1 + i % 3
            questions.append({"question_id": qid, "image_id": image, "question": f"Is it {i}?"})
            humans = (
                _answers((answer, 4), ("no", 3), ("maybe", 3)) if answer != "no" else _answers(("no", 10))
            )
            annotations.append(
                {
                    "question_id": qid,
                    "image_id": image,
                    "answers": humans,
                    "multiple_choice_answer": answer,
                    "answer_type": "other",
                    "question_type": "is it",
                }
            )
            qid += 1
        folder = root / STEMS[split]
        folder.mkdir(parents=True)
        q_data: object = {"questions": questions} if wrapped else questions
        a_data: object = {"annotations": annotations} if wrapped else annotations
        (folder / f"{STEMS[split]}-Ques.json").write_text(json.dumps(q_data))
        (folder / f"{STEMS[split]}-Ans.json").write_text(json.dumps(a_data))
    test_ids = list(range(110, 114))  # train 100..107, val 108..109, test 110..113
    for j, name in enumerate(OOD_SUBSETS):
        folder = root / "OOD-Test" / name
        folder.mkdir(parents=True)
        members = [{"question_id": q} for q in test_ids[: 1 + j % 4]]
        (folder / f"OOD-Test-{name}-Ques.json").write_text(json.dumps(members))
    images = root / "images"
    images.mkdir()
    for image in (1, 2):
        Image.new("RGB", (12, 8), (image * 80, 0, 0)).save(images / f"COCO_train2014_{image:012d}.jpg")
    (images / "val2014").mkdir()
    Image.new("RGB", (8, 8), (0, 90, 0)).save(images / "val2014" / f"COCO_val2014_{3:012d}.jpg")
    return root
