"""AV-MNIST (paper Table 1): image-only, audio-only, intra, inter (LF, LRTF) and I2M2 (LF, LRTF).

``--data-dir`` is a folder in MultiBench's layout (see :mod:`i2m2.data.avmnist`), e.g. one written by
``i2m2 data avmnist``. Models: :mod:`i2m2.models.builders.avmnist` (LeNet encoders, c = 6).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from i2m2.data.avmnist import NUM_CLASSES, load_avmnist
from i2m2.data.multimodal_dataset import DataSplits
from i2m2.errors import UserError
from i2m2.experiments.registry import register_experiment
from i2m2.experiments.spec import Experiment, StageConfig
from i2m2.models.builders.avmnist import avmnist_late_fusion, avmnist_lrtf, avmnist_unimodal_classifier
from i2m2.models.expert import Expert

MODALITIES = ("image", "audio")


def load_data(group: str, data_dir: Path | None, seed: int) -> DataSplits:
    if data_dir is None:
        raise UserError("experiment 'avmnist' reads files: pass --data-dir DIR (see 'i2m2 data avmnist')")
    return load_avmnist(data_dir, seed)


def unimodal_classifier(modality: str, group: str) -> nn.Module:
    return avmnist_unimodal_classifier(modality)


def late_fusion(modalities: tuple[str, ...], group: str) -> Expert:
    return avmnist_late_fusion(modalities)


def low_rank_tensor_fusion(modalities: tuple[str, ...], group: str) -> Expert:
    return avmnist_lrtf(modalities)


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


@register_experiment("avmnist")
def avmnist() -> Experiment:
    return Experiment(
        name="avmnist",
        description="AV-MNIST: PCA-degraded MNIST images + noisy FSDD spectrograms (paper Table 1)",
        modalities=MODALITIES,
        num_classes=NUM_CLASSES,
        load_data=load_data,
        build_unimodal=unimodal_classifier,
        build_inter={"lf": late_fusion, "lrtf": low_rank_tensor_fusion},
        pretrain=PRETRAIN,
        finetune=FINETUNE,
        needs_data_dir=True,
    )
