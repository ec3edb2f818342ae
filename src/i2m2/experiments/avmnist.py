"""AV-MNIST (paper Table 1): image-only, audio-only, intra, inter (LF, LRTF) and I2M2 (LF, LRTF).

``--data-dir`` is a folder in MultiBench's layout (see :mod:`i2m2.data.avmnist`), e.g. one written by
``i2m2 data avmnist``. Models as MultiBench's examples build them: ``c = 6`` channels everywhere (the value
that gives Appendix B's LRTF output size ``c * 20 = 120``); image encoder ``LeNet(1, c, 3)`` -> 8c = 48
features; audio encoder ``LeNet(1, c, 5)`` -> 32c = 192 features; every head is ``MLP(in, 100, C)``.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from i2m2.catalog import register_experiment
from i2m2.data.avmnist import NUM_CLASSES, load_avmnist
from i2m2.data.multimodal_dataset import DataSplits
from i2m2.errors import UserError
from i2m2.experiment import Experiment, Recipe, StageConfig
from i2m2.models.encoders import LeNet
from i2m2.models.fusion import LateFusion, LowRankTensorFusion
from i2m2.models.mlp import MLP

MODALITIES = ("image", "audio")
HEAD_HIDDEN = 100
# Extra 3x3 conv blocks per modality: 28x28 images need 3 more halvings, 112x112 spectrograms 5.
ADDITIONAL_LAYERS = {"image": 3, "audio": 5}

# Stage 1 (each expert alone): the paper's Appendix B, plain SGD (MultiBench's SGD has no momentum),
# lr 5e-2, weight decay 1e-4, 25 epochs; batch 40 and gradient-norm clipping at 8 from the authors'
# scripts. Stage 2 (joint fine-tuning of pretrained experts): the authors' scripts fine-tune at lr 1e-2,
# five times lower, so that the pretrained experts are adjusted rather than retrained.
PRETRAIN = StageConfig(
    optimizer="sgd",
    lr=5e-2,
    momentum=0.0,
    weight_decay=1e-4,
    max_epochs=25,
    batch_size=40,
    gradient_clip_val=8.0,
)
FINETUNE = StageConfig(
    optimizer="sgd",
    lr=1e-2,
    momentum=0.0,
    weight_decay=1e-4,
    max_epochs=25,
    batch_size=40,
    gradient_clip_val=8.0,
)


def avmnist_encoder(modality: str, channels: int) -> LeNet:
    """The LeNet encoder of ``image`` or ``audio``."""
    if modality not in ADDITIONAL_LAYERS:
        raise ValueError(f"unknown AV-MNIST modality '{modality}'; expected one of {list(ADDITIONAL_LAYERS)}")
    return LeNet(1, channels, ADDITIONAL_LAYERS[modality])


def avmnist_unimodal_classifier(modality: str, num_classes: int, channels: int = 6) -> nn.Module:
    """LeNet encoder + ``MLP(features, 100, classes)``: the image-only and audio-only rows."""
    encoder = avmnist_encoder(modality, channels)
    return nn.Sequential(encoder, MLP(encoder.out_features, [HEAD_HIDDEN], num_classes))


def avmnist_late_fusion(modalities: tuple[str, ...], num_classes: int, channels: int = 6) -> LateFusion:
    """LF: the LeNet features concatenated (8c + 32c = 240), then ``MLP(240, 100, classes)``."""
    encoders = {m: avmnist_encoder(m, channels) for m in modalities}
    features = sum(e.out_features for e in encoders.values())
    return LateFusion(encoders, MLP(features, [HEAD_HIDDEN], num_classes))


def avmnist_lrtf(
    modalities: tuple[str, ...], num_classes: int, channels: int = 6, rank: int = 40, output_dim: int = 120
) -> LowRankTensorFusion:
    """LRTF: rank-40 low-rank tensor fusion of the LeNet features into 120, then ``MLP(120, 100, C)``."""
    encoders = {m: avmnist_encoder(m, channels) for m in modalities}
    dims = {m: e.out_features for m, e in encoders.items()}
    return LowRankTensorFusion(encoders, dims, rank, output_dim, MLP(output_dim, [HEAD_HIDDEN], num_classes))


def load_data(group: str, data_dir: Path | None, seed: int) -> DataSplits:
    if data_dir is None:
        raise UserError("experiment 'avmnist' reads files: pass --data-dir DIR (see 'i2m2 data avmnist')")
    return load_avmnist(data_dir, seed)


@register_experiment("avmnist")
def avmnist(channels: int = 6) -> Experiment:
    """AV-MNIST (paper Table 1): image, audio, intra, inter and I2M2 with LF and LRTF.

    Args:
        channels: LeNet base channels c of every expert (the paper's configuration uses 6).
    """
    return Experiment(
        name="avmnist",
        description="AV-MNIST: PCA-degraded MNIST images + noisy FSDD spectrograms (paper Table 1)",
        modalities=MODALITIES,
        num_classes=NUM_CLASSES,
        load_data=load_data,
        build_unimodal=lambda m, classes, group: avmnist_unimodal_classifier(m, classes, channels),
        build_inter={
            "lf": lambda mods, classes, group: avmnist_late_fusion(mods, classes, channels),
            "lrtf": lambda mods, classes, group: avmnist_lrtf(mods, classes, channels),
        },
        recipe=Recipe(pretrain=PRETRAIN, finetune=FINETUNE),
        needs_data_dir=True,
    )
