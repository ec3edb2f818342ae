"""easy-VQA (the ``easy-vqa`` package): 64x64 images of one coloured shape and questions about them.

The package ships 4,000 train / 1,000 test PNGs and 38,575 / 9,673 questions with 13 answers, so this
benchmark needs no download. Modalities:

* ``image``: float32 ``(3, 64, 64)`` in 0..1. The PNGs are decoded once into one uint8 tensor cached
  under :func:`cache_dir` (keyed by the package version); each example looks its image up by id, so the
  ~10 questions of an image share one copy (60 MB in all instead of 2.4 GB of floats).
* ``question``: int64 ``(MAX_QUESTION_LENGTH,)`` token ids, padded with :data:`PAD` (0).

Labels index :func:`answers` (the package's ``answers.txt`` order). Per-example groups are the question
type (:data:`GROUP_NAMES`), read off the answer: yes/no, a shape, or a colour. Validation is a seeded
share of the *training images* with all their questions, so validation, like test, holds unseen images.
"""

from __future__ import annotations

import io
import os
import re
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from i2m2.atomic import atomic_write
from i2m2.data.multimodal_dataset import DataSplits, MultimodalDataset
from i2m2.errors import DataError, UserError

MODALITIES = ("image", "question")
NUM_CLASSES = 13
IMAGE_SIZE = 64
MAX_QUESTION_LENGTH = 12  # the longest easy-VQA question has 9 words; longer ones are cut
PAD, UNK = 0, 1
GROUP_NAMES = ("yes/no", "shape", "color")
SHAPES = ("circle", "rectangle", "triangle")
_WORD = re.compile(r"[a-z]+")


class Vocabulary:
    """Word -> id for the questions: ids 0 and 1 are padding and unknown, then words in sorted order.

    Built from training questions only, so test words never leak into the model; sorting makes the ids
    the same on every machine and run.
    """

    def __init__(self, words: Sequence[str]) -> None:
        self.words = ["<pad>", "<unk>", *sorted(set(words))]
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def from_questions(cls, questions: Sequence[str]) -> Vocabulary:
        return cls([w for q in questions for w in tokenize(q)])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, questions: Sequence[str], max_length: int = MAX_QUESTION_LENGTH) -> Tensor:
        """``(N, max_length)`` int64 ids, unknown words as :data:`UNK`, padded (or cut) to ``max_length``."""
        ids = torch.full((len(questions), max_length), PAD, dtype=torch.int64)
        for row, question in enumerate(questions):
            tokens = [self.index.get(w, UNK) for w in tokenize(question)][:max_length]
            ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.int64)
        return ids


def vocabulary_text(vocab: Vocabulary) -> dict[str, Any]:
    """The ``text`` step of a saved preprocessing record: the vocabulary and this module's tokenizer rule
    (:func:`tokenize`), as plain values, so questions given as strings encode as at training time."""
    return {"words": vocab.words, "pattern": _WORD.pattern, "lowercase": True, "unknown": UNK, "pad": PAD}


def tokenize(question: str) -> list[str]:
    """Lower-case words; punctuation is dropped (``"what color is it?"`` -> 4 words)."""
    return _WORD.findall(question.lower())


class EasyVQADataset(MultimodalDataset):
    """Questions that look their image up in one shared uint8 tensor; items as :class:`MultimodalDataset`.

    Args:
        images: ``(num_images, 3, 64, 64)`` uint8, shared by every question on that image.
        image_index: ``(N,)`` int64 row of each question's image in ``images``.
        questions: ``(N, L)`` int64 token ids.
        labels: ``(N,)`` answer ids.
        groups: ``(N,)`` question-type ids (see :data:`GROUP_NAMES`).
    """

    def __init__(
        self, images: Tensor, image_index: Tensor, questions: Tensor, labels: Tensor, groups: Tensor | None
    ) -> None:
        super().__init__({"question": questions}, labels, groups)
        if len(image_index) != len(labels):
            raise ValueError(f"image_index has {len(image_index)} rows, labels {len(labels)}")
        self.images = images
        self.image_index = image_index.long()

    def __getitem__(self, index: int) -> tuple[dict[str, Tensor], Tensor]:
        image = self.images[self.image_index[index]].float().div_(255.0)
        return {"image": image, "question": self.inputs["question"][index]}, self.labels[index]

    @property
    def modalities(self) -> tuple[str, ...]:
        return MODALITIES

    def subset(self, index: Tensor) -> EasyVQADataset:
        groups = None if self.groups is None else self.groups[index]
        return EasyVQADataset(
            self.images, self.image_index[index], self.inputs["question"][index], self.labels[index], groups
        )


def load_easy_vqa(
    seed: int = 0,
    val_fraction: float = 0.1,
    limit: int | None = None,
    cache: Path | None = None,
) -> DataSplits:
    """Train/val/test splits of easy-VQA with modalities ``image`` and ``question``.

    Args:
        seed: chooses the validation images (and the ``limit`` subsample).
        val_fraction: share of the training images whose questions form the validation split.
        limit: keep at most this many questions of train (before validation is carved off) and of test,
            a seeded random choice: for tests and quick looks.
        cache: the folder of the decoded-image cache (default: :func:`cache_dir`).
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if limit is not None and limit < 2:
        raise ValueError(f"limit must be at least 2, got {limit}")
    package = _package()
    answers = [str(a) for a in package.get_answers()]
    if len(answers) != NUM_CLASSES:
        raise DataError(f"easy-vqa answers.txt: expected {NUM_CLASSES} answers, got {len(answers)}")
    images = decoded_images(cache)
    raw = {"train": package.get_train_questions(), "test": package.get_test_questions()}
    vocab = Vocabulary.from_questions(raw["train"][0])
    generator = torch.Generator().manual_seed(seed)
    data = {}
    for split, (texts, answer_texts, image_ids) in raw.items():
        ids, rows = images[split]
        dataset = _questions(split, texts, answer_texts, image_ids, answers, ids, rows, vocab)
        if limit is not None and len(dataset) > limit:
            dataset = dataset.subset(torch.randperm(len(dataset), generator=generator)[:limit].sort().values)
        data[split] = dataset
    train, val = _split_by_image(data["train"], val_fraction, generator)
    return DataSplits(
        train, val, data["test"], NUM_CLASSES, preprocessing=easy_vqa_preprocessing(vocab, answers)
    )


def easy_vqa_preprocessing(vocab: Vocabulary, answers: Sequence[str]) -> dict[str, Any]:
    """What :func:`load_easy_vqa` does to a raw question and image, as plain values saved with each job:
    the training vocabulary and tokenizer, the image size and /255 scaling, the answer names; and the
    package's file layout (``questions.json`` of ``[question, answer, image id]``, ``images/<id>.png``),
    which ``i2m2 predict`` reads."""
    side = [IMAGE_SIZE, IMAGE_SIZE]
    image = {
        "shape": [3, *side],
        "dtype": "uint8",
        "bounds": [0.0, 255.0],
        "standardize": {"scale": [255.0], "mean": [0.0], "std": [1.0]},
        "model_shape": [3, *side],
        "image_file": {"size": side},
    }
    question = {
        "shape": [MAX_QUESTION_LENGTH],
        "dtype": "int64",
        "bounds": [0, len(vocab) - 1],
        "text": {
            "words": vocab.words,
            "pattern": _WORD.pattern,
            "lowercase": True,
            "unknown": UNK,
            "pad": PAD,
        },
    }
    reader = {"kind": "vqa-questions", "questions": "questions.json", "image": "images/{id}.png"}
    return {"inputs": {"image": image, "question": question}, "classes": list(answers), "reader": reader}


def answer_groups(answers: Sequence[str]) -> list[int]:
    """The question type of each answer: 0 yes/no, 1 shape, 2 colour (every other answer is a colour)."""
    return [0 if a in ("yes", "no") else 1 if a in SHAPES else 2 for a in answers]


def _questions(
    split: str,
    texts: Sequence[str],
    answer_texts: Sequence[str],
    image_ids: Sequence[int],
    answers: Sequence[str],
    ids: np.ndarray,
    images: Tensor,
    vocabulary: Vocabulary,
) -> EasyVQADataset:
    label_of = {a: i for i, a in enumerate(answers)}
    unknown = sorted(set(answer_texts) - set(label_of))
    if unknown:
        raise DataError(f"easy-vqa {split} questions: answers {unknown[:5]} are not in answers.txt")
    row_of = {int(i): r for r, i in enumerate(ids)}
    missing = sorted({int(i) for i in image_ids} - set(row_of))
    if missing:
        raise DataError(f"easy-vqa {split} questions: no image file for image ids {missing[:5]}")
    return EasyVQADataset(
        images,
        torch.tensor([row_of[int(i)] for i in image_ids], dtype=torch.int64),
        vocabulary.encode(texts),
        torch.tensor([label_of[a] for a in answer_texts], dtype=torch.int64),
        torch.tensor(answer_groups(answer_texts), dtype=torch.int64),
    )


def _split_by_image(
    train: EasyVQADataset, val_fraction: float, generator: torch.Generator
) -> tuple[EasyVQADataset, EasyVQADataset]:
    """Hold out whole images, so no validation image was seen in training (as on test)."""
    used = train.image_index.unique()
    if len(used) < 2:
        raise ValueError(f"easy-vqa: {len(used)} training image(s); need 2 to carve a validation split")
    n_val = min(len(used) - 1, max(1, round(len(used) * val_fraction)))
    held_out = used[torch.randperm(len(used), generator=generator)[:n_val]]
    is_val = torch.isin(train.image_index, held_out)
    return train.subset(torch.nonzero(~is_val).flatten()), train.subset(torch.nonzero(is_val).flatten())


def cache_dir() -> Path:
    """``$I2M2_CACHE/easy_vqa``, else ``$XDG_CACHE_HOME/i2m2/easy_vqa``, else ``~/.cache/i2m2/easy_vqa``."""
    if os.environ.get("I2M2_CACHE"):
        return Path(os.environ["I2M2_CACHE"]) / "easy_vqa"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "i2m2" / "easy_vqa"


def decoded_images(cache: Path | None = None) -> dict[str, tuple[np.ndarray, Tensor]]:
    """Split -> (image ids, uint8 ``(n, 3, 64, 64)`` images), decoded once and cached as one ``.npz``.

    A damaged cache file is decoded again and replaced; an unwritable cache folder only costs the
    decoding (about a second) on every load.
    """
    path = Path(cache or cache_dir()) / f"images-easy-vqa-{_package_version()}.npz"
    arrays = _read_cache(path)
    if arrays is None:
        package = _package()
        arrays = {}
        for split, paths in (
            ("train", package.get_train_image_paths()),
            ("test", package.get_test_image_paths()),
        ):
            ids = np.array(sorted(paths), dtype=np.int64)
            arrays[f"{split}_ids"] = ids
            arrays[f"{split}_images"] = np.stack([_read_png(Path(paths[int(i)])) for i in ids])
        try:
            atomic_write(path, lambda f: _save_npz(f, arrays))
        except OSError as err:
            warnings.warn(f"easy-vqa: could not cache decoded images in {path.parent} ({err})", stacklevel=2)
    return {s: (arrays[f"{s}_ids"], torch.from_numpy(arrays[f"{s}_images"])) for s in ("train", "test")}


def _save_npz(f: Any, arrays: Mapping[str, np.ndarray]) -> None:
    named: dict[str, Any] = dict(arrays)
    np.savez(f, **named)  # uncompressed: loading 60 MB this way takes a fraction of a second


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        warnings.warn(f"{path}: unreadable image cache ({err}); decoding the PNGs again", stacklevel=3)
        return None
    for split in ("train", "test"):
        ids, images = arrays.get(f"{split}_ids"), arrays.get(f"{split}_images")
        if (
            ids is None
            or images is None
            or images.dtype != np.uint8
            or images.shape[1:] != (3, IMAGE_SIZE, IMAGE_SIZE)
            or ids.shape != (len(images),)
        ):
            warnings.warn(
                f"{path}: image cache in an unexpected format; decoding the PNGs again", stacklevel=3
            )
            return None
    return arrays


def _read_png(path: Path) -> np.ndarray:
    """One PNG as uint8 ``(3, 64, 64)``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"{path}: not a readable PNG image ({err})") from err
    if pixels.shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise DataError(f"{path}: expected a {IMAGE_SIZE}x{IMAGE_SIZE} image, got {pixels.shape[1::-1]}")
    return pixels.transpose(2, 0, 1)


def _package() -> Any:
    try:
        import easy_vqa
    except ModuleNotFoundError as err:
        raise UserError("easy-VQA needs the 'easy-vqa' package: pip install easy-vqa") from err
    return easy_vqa


def _package_version() -> str:
    try:
        return version("easy-vqa")
    except PackageNotFoundError:
        _package()
        return "unknown"


def answer_names() -> list[str]:
    """The 13 answers in label order."""
    return [str(a) for a in _package().get_answers()]


def vocabulary() -> Vocabulary:
    """The vocabulary of all training questions of the installed package (what :func:`load_easy_vqa` uses)."""
    return Vocabulary.from_questions(_package().get_train_questions()[0])
