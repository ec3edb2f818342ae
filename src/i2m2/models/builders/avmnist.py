"""The paper's AV-MNIST models (Table 1), as MultiBench's examples build them.

``c = 6`` channels everywhere (MultiBench ``examples/multimedia/avmnist_*.py``); it is the value that
gives Appendix B's LRTF output size, ``c * 20 = 120``. Image encoder ``LeNet(1, c, 3)`` -> 8c = 48
features; audio encoder ``LeNet(1, c, 5)`` -> 32c = 192 features; every head is ``MLP(in, 100, 10)``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from i2m2.models.encoders import LeNet
from i2m2.models.fusion import LateFusion, LowRankTensorFusion
from i2m2.models.mlp import MLP

CHANNELS = 6
NUM_CLASSES = 10
HEAD_HIDDEN = 100
# Extra 3x3 conv blocks per modality: 28x28 images need 3 more halvings, 112x112 spectrograms 5.
ADDITIONAL_LAYERS = {"image": 3, "audio": 5}


def avmnist_encoder(modality: str, channels: int = CHANNELS) -> LeNet:
    """The LeNet encoder of ``image`` or ``audio``."""
    if modality not in ADDITIONAL_LAYERS:
        raise ValueError(f"unknown AV-MNIST modality '{modality}'; expected one of {list(ADDITIONAL_LAYERS)}")
    return LeNet(1, channels, ADDITIONAL_LAYERS[modality])


def avmnist_unimodal_classifier(
    modality: str, channels: int = CHANNELS, num_classes: int = NUM_CLASSES
) -> nn.Module:
    """LeNet encoder + ``MLP(features, 100, classes)``: the image-only and audio-only rows."""
    encoder = avmnist_encoder(modality, channels)
    return nn.Sequential(encoder, MLP(encoder.out_features, [HEAD_HIDDEN], num_classes))


def avmnist_image_classifier(channels: int = CHANNELS, num_classes: int = NUM_CLASSES) -> nn.Module:
    return avmnist_unimodal_classifier("image", channels, num_classes)


def avmnist_audio_classifier(channels: int = CHANNELS, num_classes: int = NUM_CLASSES) -> nn.Module:
    return avmnist_unimodal_classifier("audio", channels, num_classes)


def avmnist_late_fusion(
    modalities: Sequence[str] = ("image", "audio"), channels: int = CHANNELS, num_classes: int = NUM_CLASSES
) -> LateFusion:
    """LF: the LeNet features concatenated (8c + 32c = 240), then ``MLP(240, 100, classes)``."""
    encoders = {m: avmnist_encoder(m, channels) for m in modalities}
    features = sum(e.out_features for e in encoders.values())
    return LateFusion(encoders, MLP(features, [HEAD_HIDDEN], num_classes))


def avmnist_lrtf(
    modalities: Sequence[str] = ("image", "audio"),
    channels: int = CHANNELS,
    rank: int = 40,
    output_dim: int = 120,
    num_classes: int = NUM_CLASSES,
) -> LowRankTensorFusion:
    """LRTF: rank-40 low-rank tensor fusion of the LeNet features into 120, then ``MLP(120, 100, C)``."""
    encoders = {m: avmnist_encoder(m, channels) for m in modalities}
    dims = {m: e.out_features for m, e in encoders.items()}
    return LowRankTensorFusion(encoders, dims, rank, output_dim, MLP(output_dim, [HEAD_HIDDEN], num_classes))
