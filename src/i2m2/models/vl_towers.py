"""Experts on pretrained vision and text towers from local folders (the VQA-VS and NLVR2 experiments').

Frozen towers (the default): the data layer caches each tower's features once per split
(:mod:`i2m2.data.feature_cache`), and every expert is an MLP head (Linear -> LayerNorm -> GELU -> Linear)
on them: the image expert on the image features (both images of an NLVR2 pair, joined left then right),
the text expert on the text features, the inter expert on all of them concatenated. Fine-tuned towers
(``fine_tune=True``): the data layer serves pixels and token ids, and each expert owns its towers
(I2M2's experts share nothing), with the same heads on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from i2m2.errors import UserError
from i2m2.models import backbones
from i2m2.models.encoders.pair import PairEncoder
from i2m2.models.expert import Expert
from i2m2.models.fusion import EarlyFusion, LateFusion
from i2m2.models.heads import MLPHead


def quiet_transformers() -> None:
    """No per-load progress bars: a run loads towers for every expert, and errors must stay one line."""
    backbones.transformers_module().utils.logging.disable_progress_bar()


@dataclass
class Towers:
    """A vision and a text tower and how the experts use them.

    Args:
        vision, text: ``save_pretrained`` folders (never downloaded).
        image_key, text_key: the modalities they read.
        pair: the image modality is a pair of images (NLVR2), read by one shared tower.
        pooling: ``cls``, ``pooler`` or ``mean`` (:mod:`i2m2.models.backbones`).
        fine_tune: train the towers with the heads instead of caching frozen features.
        max_length: token ids per text.
        hidden: hidden width of every head (default twice its input, as in FIBER's).
        dropout: dropout of every head.
    """

    vision: Path
    text: Path
    image_key: str
    text_key: str
    pair: bool = False
    pooling: str = "cls"
    fine_tune: bool = False
    max_length: int = 32
    hidden: int | None = None
    dropout: float = 0.0
    _loaded: tuple[Any, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.pooling not in backbones.POOLINGS:
            raise UserError(f"--pooling: expected one of {list(backbones.POOLINGS)}, got '{self.pooling}'")
        for path in (self.vision, self.text):  # a clear line before any transformers import
            backbones.check_backbone_folder(Path(path))

    def data_towers(self) -> tuple[backbones.VisionBackbone, backbones.TextBackbone]:
        """The towers the data layer uses: frozen ones compute the cached features; trainable ones only
        lend their image transform and tokenizer. Loaded once."""
        if self._loaded is None:
            self._loaded = self._build()
        return self._loaded

    def _build(self) -> tuple[backbones.VisionBackbone, backbones.TextBackbone]:
        quiet_transformers()
        vision = backbones.vision_backbone(Path(self.vision), self.pooling, self.fine_tune)
        text = backbones.text_backbone(Path(self.text), self.pooling, self.fine_tune, self.max_length)
        return vision, text

    def feature_sizes(self) -> dict[str, int]:
        vision, text = self.data_towers()
        return {
            self.image_key: vision.out_features * (2 if self.pair else 1),
            self.text_key: text.out_features,
        }

    def _head(self, in_features: int, classes: int) -> MLPHead:
        return MLPHead(in_features, classes, self.hidden, self.dropout)

    def _encoder(self, modality: str) -> nn.Module:
        """A fresh trainable tower (each expert owns its own), shared by the two images of a pair."""
        quiet_transformers()
        if modality == self.text_key:
            return backbones.text_backbone(Path(self.text), self.pooling, True, self.max_length)
        vision = backbones.vision_backbone(Path(self.vision), self.pooling, True)
        return PairEncoder(vision) if self.pair else vision

    def unimodal(self, modality: str, classes: int, group: str = "") -> nn.Module:
        """The image or text expert: a head on that modality's features (or on its own fine-tuned tower)."""
        size = self.feature_sizes()[modality]
        if not self.fine_tune:
            return self._head(size, classes)
        return nn.Sequential(self._encoder(modality), self._head(size, classes))

    def inter(self, modalities: tuple[str, ...], classes: int, group: str = "") -> Expert:
        """The inter expert: one head on the concatenated features of every modality (early fusion)."""
        size = sum(self.feature_sizes()[m] for m in modalities)
        if not self.fine_tune:
            return EarlyFusion(modalities, self._head(size, classes), flatten=True)
        return LateFusion({m: self._encoder(m) for m in modalities}, self._head(size, classes))
