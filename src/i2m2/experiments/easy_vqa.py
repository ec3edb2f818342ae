"""easy-VQA: a small vision-and-language task that runs anywhere (the data ships in the ``easy-vqa`` package).

Rows: image-only (a small CNN), question-only (embedding + GRU), intra, inter (late fusion of both
encoders) and I2M2, over seeds that also choose the validation images. Every expert has its own encoders
(I2M2's experts share nothing). Sizes are the smallest that reach the targets in ``docs/easy-vqa.md`` on
two CPU cores. Measured results, commands and wall times: ``docs/easy-vqa.md``.
"""

from __future__ import annotations

from functools import lru_cache, partial
from pathlib import Path

from torch import nn

from i2m2.catalog import register_experiment
from i2m2.data.easy_vqa import GROUP_NAMES, MODALITIES, NUM_CLASSES, load_easy_vqa, vocabulary
from i2m2.data.multimodal_dataset import DataSplits
from i2m2.errors import UserError
from i2m2.experiment import Experiment, Recipe, StageConfig
from i2m2.models.encoders.cnn import SmallCNN
from i2m2.models.encoders.text import QuestionEncoder
from i2m2.models.fusion import LateFusion
from i2m2.models.mlp import MLP

IMAGE_FEATURES = 64
QUESTION_FEATURES = 64
EMBEDDING_DIM = 32
HEAD_HIDDEN = 64
FUSION_HIDDEN = 128

# Stage 1: Adam at 1e-3; early stopping on validation accuracy (patience 3) ends the unimodal experts
# after 4-7 epochs. The cap of 15 lets the late-fusion expert converge: with 10 it was still improving
# in one seed, which flattered I2M2 (docs/easy-vqa.md). Stage 2 fine-tunes the pretrained experts
# jointly at a ten times lower rate, so they are adjusted rather than retrained.
PRETRAIN = StageConfig(optimizer="adam", lr=1e-3, max_epochs=15, batch_size=64, patience=3)
FINETUNE = StageConfig(optimizer="adam", lr=1e-4, max_epochs=5, batch_size=64, patience=2)


@lru_cache(maxsize=1)
def vocab_size() -> int:
    """Token ids of the training questions' vocabulary (the question encoders' embedding rows)."""
    return len(vocabulary())


def easy_vqa_encoder(modality: str) -> SmallCNN | QuestionEncoder:
    """The encoder of ``image`` (:class:`SmallCNN`) or ``question`` (:class:`QuestionEncoder`)."""
    if modality == "image":
        return SmallCNN(out_features=IMAGE_FEATURES)
    if modality == "question":
        return QuestionEncoder(vocab_size(), EMBEDDING_DIM, QUESTION_FEATURES)
    raise ValueError(f"unknown easy-VQA modality '{modality}'; expected 'image' or 'question'")


def easy_vqa_unimodal_classifier(modality: str, num_classes: int, group: str = "") -> nn.Module:
    """Encoder + ``MLP(features, 64, classes)``: the image-only and question-only rows."""
    encoder = easy_vqa_encoder(modality)
    return nn.Sequential(encoder, MLP(encoder.out_features, [HEAD_HIDDEN], num_classes))


def easy_vqa_late_fusion(modalities: tuple[str, ...], num_classes: int, group: str = "") -> LateFusion:
    """LF: both encoders' features concatenated, then ``MLP(128, 128, classes)``.

    The hidden layer is what lets it answer yes/no questions, which need the question and the image
    together ("is there a red shape?").
    """
    encoders = {m: easy_vqa_encoder(m) for m in modalities}
    features = sum(e.out_features for e in encoders.values())
    return LateFusion(encoders, MLP(features, [FUSION_HIDDEN], num_classes))


def load_data(group: str, data_dir: Path | None, seed: int, limit: int | None = None) -> DataSplits:
    del group, data_dir  # one comparison; the data ships with the package
    return load_easy_vqa(seed, limit=limit)


@register_experiment("easy-vqa")
def easy_vqa(limit: int | None = None) -> Experiment:
    """easy-VQA: image-only, question-only, intra, inter (late fusion) and I2M2 on the packaged data.

    Args:
        limit: keep at most this many training and test questions (a seeded choice): quick looks, tests.
    """
    if limit is not None and limit < 2:
        raise UserError(f"--limit: expected at least 2 questions, got {limit}")
    return Experiment(
        name="easy-vqa",
        description="easy-VQA: questions about 64x64 images of one coloured shape (13 answers)",
        modalities=MODALITIES,
        num_classes=NUM_CLASSES,
        load_data=load_data if limit is None else partial(load_data, limit=limit),
        build_unimodal=easy_vqa_unimodal_classifier,
        build_inter={"lf": easy_vqa_late_fusion},
        recipe=Recipe(pretrain=PRETRAIN, finetune=FINETUNE),
        group_names=GROUP_NAMES,
    )
