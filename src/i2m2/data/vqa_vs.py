"""VQA-VS (Si et al., 2022): VQA v2 re-split into train / val / IID test, with nine OOD test subsets.

On-disk layout, as the VQA-VS release ships it (github.com/PhoebusSi/VQA-VS)::

    ROOT/Training/Training-Ques.json   Training-Ans.json
    ROOT/Val/Val-Ques.json             Val-Ans.json
    ROOT/IID-Test/IID-Test-Ques.json   IID-Test-Ans.json
    ROOT/OOD-Test/<NAME>/OOD-Test-<NAME>-Ques.json     NAME in OOD_SUBSETS, e.g. OOD-Test/QT+KW/...
    ROOT/images/COCO_train2014_%012d.jpg, COCO_val2014_%012d.jpg   (or in images/train2014, images/val2014)

Question and answer files follow the VQA v2 schema, either as the release's bare lists or wrapped as
``{"questions": [...]}`` / ``{"annotations": [...]}``. An OOD file lists the questions of that subset
(question dicts or bare question ids); every OOD subset is a subset of the IID test split.

* Answers are matched as the official VQA-VS scorer matches them, as raw strings; ``normalize=True``
  first applies :func:`normalize_answer` ("Two." and "2" become one answer), which can score higher
  than the official numbers. The vocabulary is every (normalized)
  ``multiple_choice_answer`` of at least ``min_count`` (9) training questions (the VQA-VS / bottom-up
  convention: 3,129 answers on the full set), ordered by frequency.
* Each question keeps the counts of its human answers that are in the vocabulary
  (``answer_labels``/``answer_counts``, ``(N, 10)``, padded with -1 / 0). From them come the soft targets
  ``min(count / 3, 1)`` (:func:`soft_targets`) and the VQA score of a prediction (:func:`vqa_score`).
* ``labels`` is the in-vocabulary answer most humans gave (ties: the ``multiple_choice_answer``), for
  code that wants one class per example; the metric is the VQA score, not accuracy on ``labels``.
  Training questions with no answer in the vocabulary have all-zero targets and are dropped; on val/test
  they stay (their VQA score is 0 whatever is predicted) with label 0.
* The test split's ``groups`` is a boolean ``(N, 9)`` matrix: question i is in OOD subset j (a question
  can be in several). :func:`ood_scores` scores IID, all nine subsets and ``OOD`` (their mean) at once.

Datasets from :func:`load_vqa_vs` yield ``({"image", "question", "answer_labels", "answer_counts"},
label)``; ``answer_labels``/``answer_counts`` are not modalities: the training step pops them and builds
the targets with :func:`soft_targets`. Raw mode (no backbones) decodes COCO images on access; with
frozen backbones, ``image`` and ``question`` are cached feature vectors (:mod:`i2m2.data.feature_cache`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from i2m2.data.easy_vqa import Vocabulary
from i2m2.data.feature_cache import FeatureDataset, cached_features, encode_in_batches
from i2m2.data.image_files import (
    ImageFilesDataset,
    ImageTransform,
    check_files_exist,
    open_image,
    resize_to_tensor,
    vision_language_inputs,
)
from i2m2.data.multimodal_dataset import DataSplits, MultimodalDataset
from i2m2.errors import DataError

if TYPE_CHECKING:
    from i2m2.models.backbones import TextBackbone, VisionBackbone

MODALITIES = ("image", "question")
ANSWER_LABELS, ANSWER_COUNTS = "answer_labels", "answer_counts"
OOD_SUBSETS = ("QT", "KW", "KWP", "QT+KW", "KO", "KOP", "QT+KO", "KW+KO", "QT+KW+KO")
SPLIT_FILES = {"train": "Training", "val": "Val", "test": "IID-Test"}
MAX_ANSWERS = 10
MAX_QUESTION_LENGTH = 14
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_NUMBERS = {w: str(i) for i, w in enumerate(_NUMBER_WORDS)} | {"none": "0"}
_ARTICLES = {"a", "an", "the"}
_PUNCTUATION = re.compile(r"[;/\[\]\"{}()=+\\_\-><@`,?!*#%^&$~|:]")


def normalize_answer(answer: str) -> str:
    """A simplified VQA answer normalization, so "Two." and "2" are the same answer.

    Lower-case; drop commas inside numbers ("1,000" -> "1000"); turn other punctuation into spaces
    (apostrophes stay: "don't"); drop periods not between digits ("3.5" stays); number words up to ten
    become digits; drop the articles a/an/the; collapse spaces. (The official script also expands
    contractions written without apostrophes; this one does not.)
    """
    text = re.sub(r"(\d),(\d)", r"\1\2", answer.lower())
    text = _PUNCTUATION.sub(" ", text)
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)
    words = [_NUMBERS.get(w, w) for w in text.split()]
    return " ".join(w for w in words if w not in _ARTICLES)


@dataclass
class VQAVSSplit:
    """One split as read from disk: per-question arrays in file order (see the module docstring)."""

    name: str
    question_ids: Tensor  # (N,) int64
    image_ids: Tensor  # (N,) int64
    questions: list[str]
    labels: Tensor  # (N,) int64
    answer_labels: Tensor  # (N, 10) int64, -1 padded
    answer_counts: Tensor  # (N, 10) float32
    ood: Tensor | None = None  # (N, 9) bool, test split only

    def __len__(self) -> int:
        return len(self.labels)


def answer_key(answer: object, normalize: bool = False) -> str:
    """An answer as scoring compares it: the raw string (official), or :func:`normalize_answer`'s form."""
    return normalize_answer(str(answer)) if normalize else str(answer)


def read_vqa_vs(
    root: Path, min_count: int = 9, normalize: bool = False
) -> tuple[dict[str, VQAVSSplit], list[str]]:
    """The train/val/test splits and the answer vocabulary (label -> answer) of the VQA-VS folder ``root``."""
    root = Path(root)
    raw = {split: _read_pairs(root, split) for split in SPLIT_FILES}
    answers = answer_vocabulary([a for _, a in raw["train"]], min_count, normalize)
    if not answers:
        raise DataError(f"{root}: no training answer occurs {min_count} times; the vocabulary is empty")
    splits = {split: _encode(split, pairs, answers, normalize) for split, pairs in raw.items()}
    splits["train"] = _drop_unanswerable(splits["train"])
    splits["test"].ood = ood_membership(root, splits["test"].question_ids)
    return splits, answers


def answer_counts(annotations: Sequence[Mapping[str, Any]], normalize: bool = False) -> Counter[str]:
    """How many questions have each ``multiple_choice_answer`` (as :func:`answer_key` compares them)."""
    return Counter(answer_key(a["multiple_choice_answer"], normalize) for a in annotations)


def training_answer_counts(root: Path, normalize: bool = False) -> Counter[str]:
    """:func:`answer_counts` of the training split, read from ``Training-Ans.json`` alone."""
    path = root / "Training" / "Training-Ans.json"
    try:
        return answer_counts(_entries(path, "annotations"), normalize)
    except (KeyError, TypeError) as err:
        raise DataError(f"{path}: not a VQA v2 answer file ({type(err).__name__}: {err})") from err


def answer_vocabulary(
    annotations: Sequence[Mapping[str, Any]], min_count: int = 9, normalize: bool = False
) -> list[str]:
    """``multiple_choice_answer`` seen in at least ``min_count`` questions, most frequent first."""
    counts = answer_counts(annotations, normalize)
    return sorted((a for a, n in counts.items() if n >= min_count), key=lambda a: (-counts[a], a))


def soft_targets(answer_labels: Tensor, answer_counts: Tensor, num_classes: int) -> Tensor:
    """``(B, C)`` VQA targets: ``min(#annotators who gave answer c / 3, 1)`` (rows are not normalized)."""
    targets = torch.zeros(len(answer_labels), num_classes, dtype=torch.float32, device=answer_counts.device)
    valid = answer_labels >= 0
    scores = (answer_counts.float() / 3.0).clamp(max=1.0) * valid
    return targets.scatter_add_(1, answer_labels.clamp(min=0), scores)


def vqa_score(predictions: Tensor, answer_labels: Tensor, answer_counts: Tensor) -> Tensor:
    """``(N,)`` per-question VQA score ``min(#humans who gave the predicted answer / 3, 1)``."""
    match = answer_labels == predictions.reshape(-1, 1)
    return ((answer_counts.float() * match).sum(dim=1) / 3.0).clamp(max=1.0)


def ood_scores(scores: Tensor, ood: Tensor) -> dict[str, float]:
    """Mean score on the whole test split (``IID``), on each OOD subset, and ``OOD`` = mean of the nine.

    Args:
        scores: ``(N,)`` per-question scores on the IID test split.
        ood: ``(N, 9)`` boolean membership (the test split's ``groups``); an empty subset scores NaN.
    """
    result = {"IID": float(scores.float().mean())}
    for j, name in enumerate(OOD_SUBSETS):
        members = scores[ood[:, j].bool()]
        result[name] = float(members.float().mean()) if len(members) else float("nan")
    result["OOD"] = float(np.mean([result[name] for name in OOD_SUBSETS]))
    return result


def ood_membership(root: Path, test_question_ids: Tensor) -> Tensor:
    """``(N, 9)`` bool: test question i is listed in OOD file j. Every listed id must be a test question."""
    row_of = {int(q): i for i, q in enumerate(test_question_ids)}
    member = torch.zeros(len(test_question_ids), len(OOD_SUBSETS), dtype=torch.bool)
    for j, name in enumerate(OOD_SUBSETS):
        path = Path(root) / "OOD-Test" / name / f"OOD-Test-{name}-Ques.json"
        ids = [int(q["question_id"]) if isinstance(q, dict) else int(q) for q in _entries(path, "questions")]
        unknown = sorted(set(ids) - set(row_of))
        if unknown:
            raise DataError(f"{path}: question ids {unknown[:5]} are not in the IID test split")
        member[[row_of[q] for q in ids], j] = True
    return member


def question_file(root: Path, split: str) -> Path:
    """The questions file of ``split`` (``train``, ``val``, ``test``) in the release's layout."""
    stem = SPLIT_FILES[split]
    return Path(root) / stem / f"{stem}-Ques.json"


def reader() -> dict[str, Any]:
    """How ``i2m2 predict`` reads this layout (saved with each job): a folder's split files, or one file."""
    return {
        "kind": "vqa-vs-questions",
        "files": {k: question_file(Path("."), k).as_posix() for k in SPLIT_FILES},
    }


@dataclass
class VQAVSQuestions:
    """The questions of one file (``question_id``, ``image_id``, ``question``), in file order."""

    question_ids: list[int]
    image_ids: list[int]
    questions: list[str]


def read_questions(path: Path) -> VQAVSQuestions:
    """A VQA v2 style questions file (a bare list or ``{"questions": [...]}``), answers not needed."""
    entries = _entries(Path(path), "questions")
    try:
        questions = VQAVSQuestions(
            [int(q["question_id"]) for q in entries],
            [int(q["image_id"]) for q in entries],
            [str(q["question"]) for q in entries],
        )
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{path}: entry without the VQA v2 field {err}") from err
    if not entries:
        raise DataError(f"{path}: no questions")
    return questions


def image_path(images: Path, image_id: int) -> Path:
    """The COCO file of ``image_id`` under ``images`` (flat, or in train2014/ val2014 subfolders)."""
    for split in ("train2014", "val2014"):
        name = f"COCO_{split}_{image_id:012d}.jpg"
        for path in (images / name, images / split / name):
            if path.is_file():
                return path
    raise DataError(f"{images / f'COCO_train2014_{image_id:012d}.jpg'}: image file not found (nor val2014)")


def load_vqa_vs(
    root: Path,
    min_count: int = 9,
    vision: VisionBackbone | None = None,
    text: TextBackbone | None = None,
    image_size: int = 224,
    batch_size: int = 64,
    normalize: bool = False,
) -> tuple[DataSplits, list[str]]:
    """Train/val/test datasets of VQA-VS and the answer vocabulary.

    Args:
        root: the VQA-VS folder (layout in the module docstring).
        min_count: training questions an answer needs to enter the vocabulary.
        vision, text: frozen backbones (:mod:`i2m2.models.backbones`). Given both, ``image`` and
            ``question`` are their cached features (computed on first use, under ``root/features``);
            else ``image`` is the decoded image (``vision.image_transform`` if given, else a resize to
            ``image_size``) and ``question`` token ids (``text.tokenize`` if given, else word ids).
        image_size: side of the resized images in raw mode without a vision backbone.
        batch_size: examples per backbone call when computing features.
        normalize: match answers after :func:`normalize_answer` (default: raw strings, as the official
            VQA-VS scorer).
    """
    root = Path(root)
    splits, answers = read_vqa_vs(root, min_count, normalize)
    vocabulary = Vocabulary.from_questions(splits["train"].questions)
    data: dict[str, MultimodalDataset]
    if vision is not None and text is not None and not (vision.trainable or text.trainable):
        data = {name: _feature_dataset(root, s, vision, text, batch_size) for name, s in splits.items()}
    else:
        tokenize = text.tokenize if text is not None else _word_ids(vocabulary, MAX_QUESTION_LENGTH)
        transform = vision.image_transform if vision is not None else resize_to_tensor(image_size)
        data = {name: _image_dataset(root, s, transform, tokenize) for name, s in splits.items()}
    inputs = vision_language_inputs(MODALITIES, vision, text, image_size, vocabulary, MAX_QUESTION_LENGTH)
    preprocessing = {"inputs": inputs, "classes": answers, "reader": reader()}
    return DataSplits(data["train"], data["val"], data["test"], len(answers), preprocessing), answers


def _image_dataset(
    root: Path, split: VQAVSSplit, transform: ImageTransform, tokenize: Callable[[Sequence[str]], Tensor]
) -> MultimodalDataset:
    paths = _image_paths(root, split)
    return ImageFilesDataset(
        "image",
        [paths[int(i)] for i in split.image_ids],
        transform,
        {"question": tokenize(split.questions)},
        split.labels,
        split.ood,
        {ANSWER_LABELS: split.answer_labels, ANSWER_COUNTS: split.answer_counts},
    )


def _feature_dataset(
    root: Path, split: VQAVSSplit, vision: VisionBackbone, text: TextBackbone, batch_size: int
) -> FeatureDataset:
    """Image features once per distinct image (questions share them), question features per question."""
    distinct, rows = torch.unique(split.image_ids, return_inverse=True)

    def images() -> np.ndarray:
        paths = _image_paths(root, split)

        def encode(ids: Sequence[int]) -> Tensor:
            return vision(torch.stack([vision.image_transform(open_image(paths[int(i)])) for i in ids]))

        return encode_in_batches(encode, distinct.tolist(), batch_size)

    def questions() -> np.ndarray:
        return encode_in_batches(lambda qs: text(text.tokenize(qs)), split.questions, batch_size)

    features = {
        "image": cached_features(
            root, vision.cache_key, split.name, "image", images, len(distinct), str(vision.folder)
        ),
        "question": cached_features(
            root, text.cache_key, split.name, "question", questions, len(split), str(text.folder)
        ),
    }
    return FeatureDataset(
        features,
        split.labels,
        {"image": rows},
        split.ood,
        {ANSWER_LABELS: split.answer_labels, ANSWER_COUNTS: split.answer_counts},
    )


def _image_paths(root: Path, split: VQAVSSplit) -> dict[int, Path]:
    paths = {int(i): image_path(root / "images", int(i)) for i in split.image_ids.unique()}
    check_files_exist(list(paths.values()), "image file")
    return paths


def _word_ids(vocabulary: Vocabulary, length: int) -> Callable[[Sequence[str]], Tensor]:
    return lambda questions: vocabulary.encode(questions, length)


def _entries(path: Path, key: str) -> list[Any]:
    """A JSON list, or the list under ``key`` of a VQA v2 style dict."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found") from err
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable JSON file ({err})") from err
    if isinstance(data, dict) and isinstance(data.get(key), list):
        return data[key]
    if isinstance(data, list):
        return data
    raise DataError(f"{path}: expected a list or a dict with a '{key}' list")


def _read_pairs(root: Path, split: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(question, annotation) pairs of a split; the two files must hold the same question ids."""
    stem = SPLIT_FILES[split]
    q_path, a_path = question_file(root, split), root / stem / f"{stem}-Ans.json"
    questions, annotations = _entries(q_path, "questions"), _entries(a_path, "annotations")
    try:
        by_id = {int(a["question_id"]): a for a in annotations}
        q_ids = [int(q["question_id"]) for q in questions]
        missing = [f for a in annotations for f in ("answers", "multiple_choice_answer") if f not in a]
        missing += [f for q in questions for f in ("question", "image_id") if f not in q]
        if missing:
            raise KeyError(missing[0])
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{q_path} / {a_path}: entry without the VQA v2 field {err}") from err
    if len(by_id) != len(annotations) or set(by_id) != set(q_ids) or len(q_ids) != len(set(q_ids)):
        extra = sorted(set(by_id) ^ set(q_ids))[:5]
        raise DataError(f"{a_path}: answers disagree with the questions of {q_path.name} (ids {extra})")
    return [(q, by_id[qid]) for q, qid in zip(questions, q_ids, strict=True)]


def _encode(
    split: str,
    pairs: list[tuple[dict[str, Any], dict[str, Any]]],
    answers: list[str],
    normalize: bool = False,
) -> VQAVSSplit:
    label_of = {a: i for i, a in enumerate(answers)}
    n = len(pairs)
    answer_labels = torch.full((n, MAX_ANSWERS), -1, dtype=torch.int64)
    answer_counts = torch.zeros(n, MAX_ANSWERS, dtype=torch.float32)
    labels = torch.zeros(n, dtype=torch.int64)
    for row, (_, annotation) in enumerate(pairs):
        counts = Counter(answer_key(a["answer"], normalize) for a in annotation["answers"])
        known = [(label_of[a], c) for a, c in counts.items() if a in label_of][:MAX_ANSWERS]
        if known:
            answer_labels[row, : len(known)] = torch.tensor([k for k, _ in known])
            answer_counts[row, : len(known)] = torch.tensor([float(c) for _, c in known])
            chosen = label_of.get(answer_key(annotation["multiple_choice_answer"], normalize), -1)
            labels[row] = max(known, key=lambda kc: (kc[1], kc[0] == chosen))[0]
    return VQAVSSplit(
        split,
        torch.tensor([int(q["question_id"]) for q, _ in pairs], dtype=torch.int64),
        torch.tensor([int(q["image_id"]) for q, _ in pairs], dtype=torch.int64),
        [str(q["question"]) for q, _ in pairs],
        labels,
        answer_labels,
        answer_counts,
    )


def _drop_unanswerable(split: VQAVSSplit) -> VQAVSSplit:
    keep = torch.nonzero((split.answer_labels >= 0).any(dim=1)).flatten()
    return VQAVSSplit(
        split.name,
        split.question_ids[keep],
        split.image_ids[keep],
        [split.questions[int(i)] for i in keep],
        split.labels[keep],
        split.answer_labels[keep],
        split.answer_counts[keep],
    )
