"""``i2m2 run nlvr2 --data-dir DIR``: NLVR2 (paper Table 3), or any folder in its layout (nlvr2-shapes).

Modalities: ``images`` (the pair) and ``statement``; two classes (True/False); metric accuracy. Rows:
image-only, text-only, intra, inter and I2M2.

* With ``--vision-backbone DIR --text-backbone DIR`` (local ``save_pretrained`` folders): MLP heads on
  cached frozen features (the image expert sees both images through one tower, features joined), or
  with ``--fine-tune`` the towers trained with the heads (the paper fine-tunes FIBER fully).
* Without backbones: small encoders trained from scratch (for ``i2m2 data nlvr2-shapes``): a shared
  :class:`SmallCNN` per pair, a word-embedding GRU per statement, late fusion for the inter expert.

Recipes (``--recipe``): ``paper`` (Appendix B: full fine-tuning at lr 1e-5; optimizer, batch and epochs
are not stated, so FIBER's AdamW, 256 and 5 are used), ``authors-code`` (the released script cannot run
NLVR2; the values of its FIBER config and README: AdamW lr 1e-4, batch 256, 5 epochs, no early
stopping; see ``docs/notes/authors-code-recipes.md``) and ``scratch`` (Adam 1e-3 for the small
encoders; the default without backbones). Measured results on nlvr2-shapes: ``docs/vl.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from torch import nn

from i2m2.catalog import register_experiment
from i2m2.data.easy_vqa import Vocabulary
from i2m2.data.multimodal_dataset import DataSplits
from i2m2.data.nlvr2 import MODALITIES, NUM_CLASSES, load_nlvr2, read_nlvr2_split
from i2m2.data.stand_in import is_simulated
from i2m2.errors import UserError
from i2m2.experiment import DataLoaderFn, Experiment, Recipe, StageConfig
from i2m2.models.encoders.cnn import SmallCNN
from i2m2.models.encoders.pair import PairEncoder
from i2m2.models.encoders.text import QuestionEncoder
from i2m2.models.expert import Expert
from i2m2.models.fusion import LateFusion
from i2m2.models.mlp import MLP
from i2m2.models.vl_towers import Towers

RecipeName = Literal["paper", "authors-code", "scratch"]

# FIBER's NLVR2 settings where the paper states none: AdamW (PyTorch's weight decay 0.01), batch 256.
RECIPES: dict[str, Recipe] = {
    "paper": Recipe(
        pretrain=StageConfig("adamw", lr=1e-5, weight_decay=0.01, max_epochs=5, batch_size=256, patience=2),
        finetune=StageConfig("adamw", lr=1e-5, weight_decay=0.01, max_epochs=5, batch_size=256, patience=2),
    ),
    "authors-code": Recipe(
        pretrain=StageConfig("adamw", lr=1e-4, weight_decay=0.01, max_epochs=5, batch_size=256),
        finetune=StageConfig("adamw", lr=1e-4, weight_decay=0.01, max_epochs=5, batch_size=256),
    ),
    # Small encoders from scratch: Adam at 1e-3 until validation accuracy stops rising; stage 2 adjusts
    # the pretrained experts at a ten times lower rate (as easy-VQA's recipe).
    "scratch": Recipe(
        pretrain=StageConfig("adam", lr=1e-3, max_epochs=20, batch_size=64, patience=4),
        finetune=StageConfig("adam", lr=1e-4, max_epochs=6, batch_size=64, patience=2),
    ),
}
CNN_CHANNELS = (16, 32, 32)
IMAGE_FEATURES = 32  # per image; the pair gives 64
EMBEDDING_DIM, STATEMENT_FEATURES = 32, 64
HEAD_HIDDEN, FUSION_HIDDEN = 64, 128
ANALYSES = ("entropy", "rescue", "groups", "missing", "sweep", "examples_nlvr2")  # + Figure 5


class ScratchEncoders:
    """The from-scratch experts: each builds its own encoders (I2M2's experts share nothing)."""

    def __init__(self, vocab_size: int, image_size: int) -> None:
        self.vocab_size = vocab_size
        self.image_size = image_size

    @classmethod
    def for_folder(cls, root: Path, image_size: int) -> ScratchEncoders:
        """Encoders whose word embedding covers the words of the folder's training statements."""
        train = read_nlvr2_split(root, "train")
        return cls(len(Vocabulary.from_questions(train.sentences)), image_size)

    def encoder(self, modality: str) -> PairEncoder | QuestionEncoder:
        if modality == "images":
            return PairEncoder(
                SmallCNN(channels=CNN_CHANNELS, out_features=IMAGE_FEATURES, image_size=self.image_size)
            )
        return QuestionEncoder(self.vocab_size, EMBEDDING_DIM, STATEMENT_FEATURES)

    def unimodal(self, modality: str, classes: int, group: str = "") -> nn.Module:
        encoder = self.encoder(modality)
        return nn.Sequential(encoder, MLP(encoder.out_features, [HEAD_HIDDEN], classes))

    def inter(self, modalities: tuple[str, ...], classes: int, group: str = "") -> Expert:
        encoders = {m: self.encoder(m) for m in modalities}
        size = sum(e.out_features for e in encoders.values())
        return LateFusion(encoders, MLP(size, [FUSION_HIDDEN], classes))


def checked_data_dir(
    data_dir: Path | None,
    vision_backbone: Path | None,
    text_backbone: Path | None,
    fine_tune: bool,
    image_size: int,
) -> Path:
    """The data folder, once the options agree: both backbones or neither, fine-tuning only with them."""
    if data_dir is None:
        raise UserError(
            "experiment 'nlvr2' reads files: pass --data-dir DIR (e.g. from 'i2m2 data nlvr2-shapes')"
        )
    if (vision_backbone is None) != (text_backbone is None):
        raise UserError("nlvr2: pass both --vision-backbone and --text-backbone, or neither (from scratch)")
    if fine_tune and vision_backbone is None:
        raise UserError("nlvr2: --fine-tune needs --vision-backbone and --text-backbone")
    if image_size < 8:
        raise UserError(f"--image-size: expected an integer >= 8, got {image_size}")
    return Path(data_dir)


def cached_splits(root: Path, build: Towers | ScratchEncoders) -> DataLoaderFn:
    """``load_data``: the splits are fixed files, read (and encoded by the towers) once per folder for
    every seed."""
    cache: dict[Path, DataSplits] = {}

    def load(group: str, folder: Path | None, seed: int) -> DataSplits:
        path = Path(folder or root)
        if path not in cache:
            if isinstance(build, ScratchEncoders):
                cache[path] = load_nlvr2(path, image_size=build.image_size, preload=True)
            else:
                vision, text = build.data_towers()
                cache[path] = load_nlvr2(path, vision, text, preload=False)
        return cache[path]

    return load


@register_experiment("nlvr2")
def nlvr2(
    data_dir: Path | None = None,
    vision_backbone: Path | None = None,
    text_backbone: Path | None = None,
    fine_tune: bool = False,
    pooling: str = "cls",
    recipe: RecipeName | None = None,
    image_size: int = 32,
    hidden: int | None = None,
    dropout: float = 0.0,
) -> Experiment:
    """NLVR2 or a folder in its layout: image-only, text-only, intra, inter and I2M2 (paper Table 3).

    Args:
        data_dir: the NLVR2-layout folder (train.json, dev.json, test1.json, images/).
        vision_backbone, text_backbone: local save_pretrained folders; both or neither (neither: small
            encoders trained from scratch).
        fine_tune: train the towers with the heads (else heads on cached frozen features).
        pooling: cls, pooler or mean.
        recipe: paper, authors-code or scratch (default: paper with backbones, scratch without).
        image_size: image side for the from-scratch encoders (nlvr2-shapes writes 32).
        hidden: hidden width of the backbone heads (default twice their input).
        dropout: dropout of the backbone heads.
    """
    root = checked_data_dir(data_dir, vision_backbone, text_backbone, fine_tune, image_size)
    build: Towers | ScratchEncoders
    if vision_backbone is not None and text_backbone is not None:
        build = Towers(
            Path(vision_backbone),
            Path(text_backbone),
            "images",
            "statement",
            pair=True,
            pooling=pooling,
            fine_tune=fine_tune,
            hidden=hidden,
            dropout=dropout,
        )
    else:
        build = ScratchEncoders.for_folder(root, image_size)
    scratch = isinstance(build, ScratchEncoders)
    where = "from scratch" if scratch else ("fine-tuned towers" if fine_tune else "frozen features")
    return Experiment(
        name="nlvr2",
        description=f"NLVR2 layout ({root.name}): is the statement true of the image pair? ({where})",
        modalities=MODALITIES,
        num_classes=NUM_CLASSES,
        load_data=cached_splits(root, build),
        build_unimodal=build.unimodal,
        build_inter={"lf": build.inter},
        recipe=RECIPES[recipe or ("scratch" if scratch else "paper")],
        needs_data_dir=True,
        analyses=ANALYSES,
        simulated=is_simulated(root),  # nlvr2-shapes
    )
