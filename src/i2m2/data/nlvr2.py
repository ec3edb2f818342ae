"""NLVR2 (Suhr et al., 2019): is a statement true of a pair of images? Binary, balanced by construction.

On-disk layout (the official release: JSON lines per split, PNG pairs named after the identifier)::

    ROOT/train.json  ROOT/dev.json  ROOT/test1.json      one JSON object per line
    ROOT/images/train/<directory>/<pair>-img0.png, -img1.png    train: numbered `directory` subfolders
    ROOT/images/dev/<pair>-img0.png, -img1.png                   dev, test1 (and train without directory)

``ROOT/<split>/...`` (without ``images/``) is accepted too. Each line has ``identifier``
(``split-set-pair-sentence``, e.g. ``dev-850-0-1``), ``sentence``, ``label`` (``"True"``/``"False"``) and,
in train, ``directory``; ``<pair>`` is the identifier without its last field, so the statements written
about one pair share its two images. Splits: train.json -> train, dev.json -> val, test1.json -> test.

Modalities (:data:`MODALITIES`):

* ``images``: the pair as one tensor ``(2, 3, H, W)`` (left, right): the image expert reads both images
  through one shared encoder and joins their features (:class:`i2m2.models.encoders.PairEncoder`); with
  a frozen backbone it is the cached ``(2, D)`` features of the two images.
* ``statement``: ``(L,)`` int64 token ids (word ids from the training statements, or a text backbone's
  tokenizer); with a frozen backbone, the cached ``(D,)`` statement features.

Labels: 1 = True, 0 = False. The metric is accuracy.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from i2m2.data.easy_vqa import Vocabulary
from i2m2.data.feature_cache import FeatureDataset, cached_features, encode_in_batches
from i2m2.data.image_files import (
    ImageFilesDataset,
    check_files_exist,
    load_image,
    resize_to_tensor,
    vision_language_inputs,
)
from i2m2.data.multimodal_dataset import DataSplits, MultimodalDataset
from i2m2.errors import DataError

if TYPE_CHECKING:
    from i2m2.models.backbones import TextBackbone, VisionBackbone

MODALITIES = ("images", "statement")
NUM_CLASSES = 2
SPLIT_FILES = {"train": "train.json", "val": "dev.json", "test": "test1.json"}
MAX_STATEMENT_LENGTH = 24
_LABELS = {"true": 1, "false": 0}
# how ``i2m2 predict`` reads this layout (saved with each job): a folder's split files, or one file
READER = {"kind": "nlvr2-statements", "files": dict(SPLIT_FILES)}


@dataclass
class NLVR2Split:
    """One split as read from disk, in file order."""

    name: str
    identifiers: list[str]
    sentences: list[str]
    labels: Tensor  # (N,) int64, 1 = True
    image_paths: list[tuple[Path, Path]]  # (left, right) per statement

    def __len__(self) -> int:
        return len(self.labels)


def pair_name(identifier: str) -> str:
    """``"dev-850-0-1"`` -> ``"dev-850-0"``: the identifier without its sentence field."""
    parts = identifier.split("-")
    if len(parts) < 4:
        raise ValueError(f"identifier '{identifier}' is not split-set-pair-sentence")
    return "-".join(parts[:-1])


def read_nlvr2_split(root: Path, split: str) -> NLVR2Split:
    """The statements of ``split`` (``train``, ``val`` or ``test``) and the paths of their image pairs."""
    return read_nlvr2_file(Path(root) / SPLIT_FILES[split], split)


def read_nlvr2_file(path: Path, split: str | None = None, require_labels: bool = True) -> NLVR2Split:
    """The statements of one JSON-lines file of the release (``ROOT/dev.json``, ``ROOT/test2.json``, ...)
    and the paths of their image pairs, found under the file's folder in the folder named after the file.

    Args:
        path: the statements file.
        split: the name the split carries (default: the file's stem).
        require_labels: ``False`` accepts lines without ``label`` (new statements to predict on); their
            label is -1.
    """
    path = Path(path)
    root = path.parent
    folder = path.stem  # the images folder is named after the file: train, dev, test1
    identifiers, sentences, labels, paths = [], [], [], []
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found") from err
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable NLVR2 statements file ({err})") from err
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            identifier, sentence = str(entry["identifier"]), str(entry["sentence"])
            given = entry["label"] if require_labels or "label" in entry else None
            label = -1 if given is None else _LABELS[str(given).lower()]
            pair = pair_name(identifier)
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(f"{path}:{number}: not an NLVR2 line ({type(err).__name__}: {err})") from err
        directory = str(entry.get("directory", ""))
        identifiers.append(identifier)
        sentences.append(sentence)
        labels.append(label)
        paths.append(_pair_paths(root, folder, directory, pair))
    if not identifiers:
        raise DataError(f"{path}: no statements")
    check_files_exist([p for pair in paths for p in pair], "image file")
    name = folder if split is None else split
    return NLVR2Split(name, identifiers, sentences, torch.tensor(labels, dtype=torch.int64), paths)


def load_nlvr2(
    root: Path,
    vision: VisionBackbone | None = None,
    text: TextBackbone | None = None,
    image_size: int = 64,
    preload: bool = False,
    batch_size: int = 64,
) -> DataSplits:
    """Train/val/test datasets of an NLVR2-layout folder (the real set or :mod:`nlvr2_shapes`).

    Args:
        root: the folder (layout in the module docstring).
        vision, text: frozen backbones: given both, ``images`` and ``statement`` are cached features
            (under ``root/features``). Else images are decoded on access (``vision.image_transform`` if
            given, else a resize to ``image_size``) and statements are token ids (``text.tokenize`` if
            given, else word ids of the training statements).
        image_size: image side in raw mode without a vision backbone.
        preload: decode every image once and keep it in memory (small sets such as nlvr2-shapes).
        batch_size: examples per backbone call when computing features.
    """
    splits = {name: read_nlvr2_split(root, name) for name in SPLIT_FILES}
    vocabulary = Vocabulary.from_questions(splits["train"].sentences)
    data: dict[str, MultimodalDataset]
    if vision is not None and text is not None and not (vision.trainable or text.trainable):
        data = {name: _feature_dataset(Path(root), s, vision, text, batch_size) for name, s in splits.items()}
    else:
        tokenize = text.tokenize if text is not None else _word_ids(vocabulary, MAX_STATEMENT_LENGTH)
        transform = vision.image_transform if vision is not None else resize_to_tensor(image_size)
        data = {
            name: ImageFilesDataset(
                "images",
                s.image_paths,
                transform,
                {"statement": tokenize(s.sentences)},
                s.labels,
                None,
                None,
                preload,
            )
            for name, s in splits.items()
        }
    inputs = vision_language_inputs(
        MODALITIES, vision, text, image_size, vocabulary, MAX_STATEMENT_LENGTH, count=2
    )
    preprocessing = {"inputs": inputs, "classes": ["False", "True"], "reader": dict(READER)}
    return DataSplits(data["train"], data["val"], data["test"], NUM_CLASSES, preprocessing=preprocessing)


def _feature_dataset(
    root: Path, split: NLVR2Split, vision: VisionBackbone, text: TextBackbone, batch_size: int
) -> FeatureDataset:
    """Image features once per distinct image file, statement features once per statement."""
    distinct = sorted({p for pair in split.image_paths for p in pair})
    row_of = {p: i for i, p in enumerate(distinct)}
    rows = torch.tensor([[row_of[a], row_of[b]] for a, b in split.image_paths], dtype=torch.int64)

    def images() -> np.ndarray:
        return encode_in_batches(
            lambda paths: vision(torch.stack([load_image(p, vision.image_transform) for p in paths])),
            distinct,
            batch_size,
        )

    def statements() -> np.ndarray:
        return encode_in_batches(lambda s: text(text.tokenize(s)), split.sentences, batch_size)

    features = {
        "images": cached_features(
            root, vision.cache_key, split.name, "images", images, len(distinct), str(vision.folder)
        ),
        "statement": cached_features(
            root, text.cache_key, split.name, "statement", statements, len(split), str(text.folder)
        ),
    }
    return FeatureDataset(features, split.labels, {"images": rows})


def _pair_paths(root: Path, folder: str, directory: str, pair: str) -> tuple[Path, Path]:
    """The first folder holding the pair's left image; the expected official path if none does."""
    candidates = [root / "images" / folder, root / folder]
    if directory:
        candidates = [root / "images" / folder / directory, root / folder / directory, *candidates]
    base = next((c for c in candidates if (c / f"{pair}-img0.png").is_file()), candidates[0])
    return base / f"{pair}-img0.png", base / f"{pair}-img1.png"


def _word_ids(vocabulary: Vocabulary, length: int) -> Callable[[Sequence[str]], Tensor]:
    return lambda sentences: vocabulary.encode(sentences, length)
