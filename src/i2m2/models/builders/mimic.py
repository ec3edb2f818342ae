"""The paper's MIMIC-III models (Table 2), as MultiBench's ``examples/healthcare/mimic_*.py`` build them.

Static encoder ``MLP(5, 10, 10)``; time-series encoder a GRU(12 -> 30) whose 24 hidden states are all
read (24 * 30 = 720 features, as MultiBench's flattening does); heads ``MLP(in, 40, classes)``; late
fusion concatenates 10 + 720 = 730 features. MultiBench's MLPs use ReLU (the paper's text says
LeakyReLU; we follow the code the paper cites).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from i2m2.models.encoders import GRUEncoder
from i2m2.models.fusion import LateFusion
from i2m2.models.mlp import MLP

STATIC_FEATURES = 5
SERIES_STEPS = 24
SERIES_FEATURES = 12
STATIC_HIDDEN = 10
GRU_HIDDEN = 30
HEAD_HIDDEN = 40
MODALITIES = ("static", "timeseries")


def mimic_encoder(modality: str) -> tuple[nn.Module, int]:
    """The encoder of ``static`` or ``timeseries`` and its number of output features."""
    if modality == "static":
        return MLP(STATIC_FEATURES, [STATIC_HIDDEN], STATIC_HIDDEN), STATIC_HIDDEN
    if modality == "timeseries":
        gru = GRUEncoder(SERIES_FEATURES, GRU_HIDDEN, num_steps=SERIES_STEPS)
        return gru, gru.out_features
    raise ValueError(f"unknown MIMIC modality '{modality}'; expected one of {list(MODALITIES)}")


def mimic_unimodal_classifier(modality: str, num_classes: int) -> nn.Module:
    """Encoder + ``MLP(features, 40, classes)``: the static-only and time-series-only rows."""
    encoder, features = mimic_encoder(modality)
    return nn.Sequential(encoder, MLP(features, [HEAD_HIDDEN], num_classes))


def mimic_late_fusion(num_classes: int, modalities: Sequence[str] = MODALITIES) -> LateFusion:
    """LF: encoder features concatenated (730), then ``MLP(730, 40, classes)``."""
    built = {m: mimic_encoder(m) for m in modalities}
    features = sum(dim for _, dim in built.values())
    return LateFusion({m: enc for m, (enc, _) in built.items()}, MLP(features, [HEAD_HIDDEN], num_classes))
