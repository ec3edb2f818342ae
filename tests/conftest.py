"""Shared fixtures: a fixed torch seed, and small models and batches built from the library's own parts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from i2m2.models.i2m2 import I2M2
from i2m2.models.methods import build_method
from i2m2.models.mlp import MLP
from i2m2.models.registry import create_fusion

# The suite trains many tiny models: one thread each avoids oversubscribing a 2-core CI machine
# (with two threads, parallel regions of tiny ops were measured 10-15x slower under load).
torch.set_num_threads(1)

# Different sizes per modality, so that a mix-up of modalities shows up as a shape error.
SMALL_DIMS = {"m0": 5, "m1": 3, "m2": 4}
SMALL_CLASSES = 3

MethodFactory = Callable[..., I2M2]
BatchFactory = Callable[..., dict[str, torch.Tensor]]


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same random state."""
    torch.manual_seed(0)


@pytest.fixture
def small_method() -> MethodFactory:
    """``small_method(method, fusion, modalities, all_subsets=False, **i2m2_kwargs)``: a tiny model.

    Modalities are vectors of sizes ``SMALL_DIMS``; experts are one-hidden-layer MLPs; C = 3 (the model's
    ``num_classes`` unless given).
    """

    def build(
        method: str, fusion: str, modalities: Sequence[str], all_subsets: bool = False, **kwargs: Any
    ) -> I2M2:
        kwargs.setdefault("num_classes", SMALL_CLASSES)
        return build_method(
            method,
            modalities,
            unimodal=lambda m: MLP(SMALL_DIMS[m], [8], SMALL_CLASSES),
            inter=lambda mods: create_fusion(
                fusion, {m: SMALL_DIMS[m] for m in mods}, SMALL_CLASSES, hidden=8
            ),
            all_subsets=all_subsets,
            **kwargs,
        )

    return build


@pytest.fixture
def small_batch() -> BatchFactory:
    """``small_batch(modalities, size=6)``: standard-normal inputs of sizes ``SMALL_DIMS``."""

    def make(modalities: Sequence[str], size: int = 6) -> dict[str, torch.Tensor]:
        return {m: torch.randn(size, SMALL_DIMS[m]) for m in modalities}

    return make


TOWER_WORDS = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "is",
    "it",
    "there",
    "are",
    "dogs",
    "0",
    "1",
    "2",
    "3",
]


@pytest.fixture(scope="session")
def tiny_towers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 1-layer BERT with a word-piece tokenizer and a 1-layer ViT with its image processor, random, saved
    into local folders as a user's pretrained backbones would be (nothing is downloaded)."""
    import transformers

    root = tmp_path_factory.mktemp("towers")
    torch.manual_seed(0)
    (root / "vocab.txt").write_text("\n".join(TOWER_WORDS))
    bert = transformers.BertConfig(
        vocab_size=len(TOWER_WORDS),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    transformers.BertModel(bert).save_pretrained(root / "bert")
    transformers.BertTokenizer(str(root / "vocab.txt")).save_pretrained(root / "bert")
    vit = transformers.ViTConfig(
        image_size=16,
        patch_size=8,
        hidden_size=12,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=24,
    )
    transformers.ViTModel(vit).save_pretrained(root / "vit")
    transformers.ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(root / "vit")
    return {"text": root / "bert", "vision": root / "vit"}


@pytest.fixture(scope="session")
def easy_vqa_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private easy-VQA image cache, filled once for the session (decoding 5,000 PNGs takes a second)."""
    from i2m2.data.easy_vqa import decoded_images

    folder = tmp_path_factory.mktemp("easy-vqa-cache")
    decoded_images(folder)
    return folder
