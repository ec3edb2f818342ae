"""easy-VQA models: a small CNN for the image, an embedding + GRU for the question, late fusion of both.

Every expert has its own encoders (I2M2's experts share nothing). Sizes are the smallest that reach
the targets in ``docs/easy-vqa.md`` on two CPU cores: image features 64, question features 64, heads
with one hidden layer.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from i2m2.models.encoders.cnn import SmallCNN
from i2m2.models.encoders.text import QuestionEncoder
from i2m2.models.fusion import LateFusion
from i2m2.models.mlp import MLP

NUM_CLASSES = 13
IMAGE_FEATURES = 64
QUESTION_FEATURES = 64
EMBEDDING_DIM = 32
HEAD_HIDDEN = 64
FUSION_HIDDEN = 128


def easy_vqa_encoder(modality: str, vocab_size: int) -> SmallCNN | QuestionEncoder:
    """The encoder of ``image`` (:class:`SmallCNN`) or ``question`` (:class:`QuestionEncoder`)."""
    if modality == "image":
        return SmallCNN(out_features=IMAGE_FEATURES)
    if modality == "question":
        return QuestionEncoder(vocab_size, EMBEDDING_DIM, QUESTION_FEATURES)
    raise ValueError(f"unknown easy-VQA modality '{modality}'; expected 'image' or 'question'")


def easy_vqa_unimodal_classifier(modality: str, vocab_size: int, num_classes: int = NUM_CLASSES) -> nn.Module:
    """Encoder + ``MLP(features, 64, classes)``: the image-only and question-only rows."""
    encoder = easy_vqa_encoder(modality, vocab_size)
    return nn.Sequential(encoder, MLP(encoder.out_features, [HEAD_HIDDEN], num_classes))


def easy_vqa_image_classifier(num_classes: int = NUM_CLASSES) -> nn.Module:
    """The image-only model (it never sees the question; see docs/easy-vqa.md for what it can learn)."""
    return easy_vqa_unimodal_classifier("image", vocab_size=0, num_classes=num_classes)


def easy_vqa_question_classifier(vocab_size: int, num_classes: int = NUM_CLASSES) -> nn.Module:
    """The question-only model: answers from the question's wording alone."""
    return easy_vqa_unimodal_classifier("question", vocab_size, num_classes)


def easy_vqa_late_fusion(
    vocab_size: int, modalities: Sequence[str] = ("image", "question"), num_classes: int = NUM_CLASSES
) -> LateFusion:
    """LF: both encoders' features concatenated, then ``MLP(128, 128, classes)``.

    The hidden layer is what lets it answer yes/no questions, which need the question and the image
    together ("is there a red shape?").
    """
    encoders = {m: easy_vqa_encoder(m, vocab_size) for m in modalities}
    features = sum(e.out_features for e in encoders.values())
    return LateFusion(encoders, MLP(features, [FUSION_HIDDEN], num_classes))
