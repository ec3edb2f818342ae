"""The ``easy-vqa`` experiment: its builders, and real training that needs both modalities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from i2m2.catalog import get_experiment
from i2m2.data.easy_vqa import (
    GROUP_NAMES,
    MAX_QUESTION_LENGTH,
    NUM_CLASSES,
    EasyVQADataset,
    load_easy_vqa,
    vocabulary,
)
from i2m2.data.multimodal_dataset import DataSplits
from i2m2.experiment import StageConfig
from i2m2.experiments.easy_vqa import easy_vqa_late_fusion, easy_vqa_unimodal_classifier
from i2m2.models.encoders.cnn import SmallCNN
from i2m2.models.encoders.text import QuestionEncoder
from i2m2.models.fusion import LateFusion
from i2m2.models.methods import build_method
from i2m2.models.mlp import MLP
from i2m2.training.fit import FitSettings, fit_and_test


@pytest.fixture(scope="module")
def cache(easy_vqa_images: Path) -> Path:
    return easy_vqa_images


def test_experiment_is_registered():
    experiment = get_experiment("easy-vqa")
    assert experiment.modalities == ("image", "question")
    assert experiment.num_classes == NUM_CLASSES and list(experiment.build_inter) == ["lf"]
    assert experiment.group_names == GROUP_NAMES and not experiment.needs_data_dir
    model = build_method(
        "i2m2",
        experiment.modalities,
        unimodal=lambda m: experiment.build_unimodal(m, NUM_CLASSES, ""),
        inter=lambda mods: experiment.build_inter["lf"](mods, NUM_CLASSES, ""),
        num_classes=NUM_CLASSES,
    )
    batch = {"image": torch.rand(2, 3, 64, 64), "question": torch.randint(0, 20, (2, MAX_QUESTION_LENGTH))}
    assert model(batch).shape == (2, NUM_CLASSES)


def test_encoders_and_builders_shapes():
    vocab = len(vocabulary())
    images = torch.rand(4, 3, 64, 64)
    questions = torch.randint(2, vocab, (4, MAX_QUESTION_LENGTH))
    assert SmallCNN()(images).shape == (4, 64)
    assert QuestionEncoder(vocab)(questions).shape == (4, 64)
    assert easy_vqa_unimodal_classifier("image", NUM_CLASSES)(images).shape == (4, NUM_CLASSES)
    assert easy_vqa_unimodal_classifier("question", NUM_CLASSES)(questions).shape == (4, NUM_CLASSES)
    fusion = easy_vqa_late_fusion(("image", "question"), NUM_CLASSES)
    assert fusion.modalities == ("image", "question")
    assert fusion({"image": images, "question": questions}).shape == (4, NUM_CLASSES)
    with pytest.raises(ValueError, match=r"expected \(batch, channels, 64, 64\)"):
        SmallCNN()(torch.rand(4, 3, 32, 32))
    with pytest.raises(ValueError, match="integer token ids"):
        QuestionEncoder(vocab)(torch.rand(4, 5))


def _tiny_unimodal(modality: str, vocab: int) -> torch.nn.Module:
    encoder: torch.nn.Module
    if modality == "image":
        encoder = SmallCNN(channels=(8, 16, 16, 32), out_features=32)
    else:
        encoder = QuestionEncoder(vocab, 16, 32)
    return torch.nn.Sequential(encoder, MLP(32, [32], NUM_CLASSES))


def _tiny_fusion(modalities: tuple[str, ...], vocab: int) -> LateFusion:
    encoders = {
        "image": SmallCNN(channels=(8, 16, 16, 32), out_features=32),
        "question": QuestionEncoder(vocab, 16, 32),
    }
    return LateFusion({m: encoders[m] for m in modalities}, MLP(64, [64], NUM_CLASSES))


@pytest.mark.slow
def test_training_needs_both_the_image_and_the_question(cache: Path):
    """On shape and colour questions each modality alone fails; models that combine them succeed.

    "what color is the shape?" needs the question (to answer a colour at all) and the image (to know
    which): the question-only model can at best guess among the answers of the asked type, and the
    image-only model cannot know whether a shape or a colour is asked. Trained for real with the
    library's Lightning recipe on a few hundred questions.
    """
    full = load_easy_vqa(seed=0, limit=4000, cache=cache)

    def open_questions(split: EasyVQADataset, n: int) -> EasyVQADataset:
        assert split.groups is not None
        return split.subset(torch.nonzero(split.groups != 0).flatten()[:n])

    data = DataSplits(
        open_questions(full.train, 600),
        open_questions(full.val, 200),
        open_questions(full.test, 600),
        NUM_CLASSES,
    )
    vocab = len(vocabulary())
    config = StageConfig(optimizer="adam", lr=3e-3, max_epochs=12, batch_size=32)

    def fit(method: str, init: dict[str, torch.Tensor] | None = None, epochs: int = 12):
        model = build_method(
            method,
            ("image", "question"),
            unimodal=lambda m: _tiny_unimodal(m, vocab),
            inter=lambda mods: _tiny_fusion(mods, vocab),
            num_classes=NUM_CLASSES,
        )
        if init is not None:
            model.load_state_dict(init)
        stage = config if init is None else StageConfig("adam", 1e-3, max_epochs=epochs, batch_size=32)
        return fit_and_test(model, data, FitSettings(stage, predict=init is not None))

    image, question = fit("unimodal:image"), fit("unimodal:question")
    inter = fit("inter")
    i2m2 = fit("i2m2", init=image.state_dict | question.state_dict | inter.state_dict, epochs=3)
    acc = {n: r.metrics["acc"] for n, r in [("image", image), ("question", question), ("inter", inter)]}
    acc["i2m2"] = i2m2.metrics["acc"]
    assert acc["question"] < 0.35 and acc["image"] < 0.5, acc  # each modality alone
    assert acc["inter"] > max(acc["image"], acc["question"]) + 0.15, acc
    assert acc["i2m2"] > max(acc["image"], acc["question"]) + 0.15, acc
    # I2M2's predictions fall back to one expert when a modality is withheld.
    assert i2m2.predictions is not None and set(i2m2.predictions.withheld) == {"image", "question"}
    withheld = i2m2.predictions.withheld["image"].argmax(1) == i2m2.predictions.labels
    assert withheld.mean() < acc["i2m2"] - 0.15
    assert i2m2.predictions.groups is not None and set(np.unique(i2m2.predictions.groups)) <= {1, 2}
