"""MIMIC-III (paper Table 2): static-only, time-series-only, intra, inter (LF) and I2M2 for three tasks.

``--data-dir`` is MultiBench's ``im.pk`` or the folder holding it (see :mod:`i2m2.data.mimic`). ``mimic``
runs the three tasks as groups (6 classes for mortality, 2 for each ICD-9 group); ``--tasks`` picks some.

Models as MultiBench's ``examples/healthcare/mimic_*.py`` build them: static encoder ``MLP(5, 10, 10)``;
time-series encoder a GRU(12 -> 30) whose 24 hidden states are all read (24 * 30 = 720 features, as
MultiBench's flattening does); heads ``MLP(in, 40, classes)``; late fusion concatenates 10 + 720 = 730
features. MultiBench's MLPs use ReLU (the paper's text says LeakyReLU; we follow the code the paper cites).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from i2m2.catalog import register_experiment
from i2m2.data.mimic import TASKS, load_mimic
from i2m2.data.multimodal_dataset import DataSplits
from i2m2.errors import UserError
from i2m2.experiment import Experiment, Recipe, StageConfig
from i2m2.models.encoders import GRUEncoder
from i2m2.models.fusion import LateFusion
from i2m2.models.mlp import MLP

MODALITIES = ("static", "timeseries")
STATIC_FEATURES, STATIC_HIDDEN = 5, 10
SERIES_STEPS, SERIES_FEATURES, GRU_HIDDEN = 24, 12, 30
HEAD_HIDDEN = 40
# The split is the same for every run seed (MultiBench's is fixed too), so seeds vary only the
# initialization and the batch order, and every method is tested on the same rows.
SPLIT_SEED = 0
# Paper Appendix B: RMSprop, lr 1e-3, batch 40, 20 epochs, for every model and both stages.
STAGE = StageConfig(optimizer="rmsprop", lr=1e-3, max_epochs=20, batch_size=40)


def mimic_encoder(modality: str) -> tuple[nn.Module, int]:
    """The encoder of ``static`` or ``timeseries`` and its number of output features."""
    if modality == "static":
        return MLP(STATIC_FEATURES, [STATIC_HIDDEN], STATIC_HIDDEN), STATIC_HIDDEN
    if modality == "timeseries":
        gru = GRUEncoder(SERIES_FEATURES, GRU_HIDDEN, num_steps=SERIES_STEPS)
        return gru, gru.out_features
    raise ValueError(f"unknown MIMIC modality '{modality}'; expected one of {list(MODALITIES)}")


def mimic_unimodal_classifier(modality: str, num_classes: int, group: str = "") -> nn.Module:
    """Encoder + ``MLP(features, 40, classes)``: the static-only and time-series-only rows."""
    encoder, features = mimic_encoder(modality)
    return nn.Sequential(encoder, MLP(features, [HEAD_HIDDEN], num_classes))


def mimic_late_fusion(modalities: tuple[str, ...], num_classes: int, group: str = "") -> LateFusion:
    """LF: encoder features concatenated (730), then ``MLP(730, 40, classes)``."""
    built = {m: mimic_encoder(m) for m in modalities}
    features = sum(dim for _, dim in built.values())
    return LateFusion({m: enc for m, (enc, _) in built.items()}, MLP(features, [HEAD_HIDDEN], num_classes))


def load_data(group: str, data_dir: Path | None, seed: int) -> DataSplits:
    if data_dir is None:
        raise UserError("the MIMIC experiments read files: pass --data-dir with im.pk or its folder")
    return load_mimic(data_dir, group, SPLIT_SEED)


@register_experiment("mimic")
def mimic(tasks: list[str] | None = None) -> Experiment:
    """MIMIC-III (paper Table 2): static, time series, intra, inter and I2M2, one group per task.

    Args:
        tasks: some of ``mortality``, ``icd9_140_239``, ``icd9_460_519`` (default: all three).
    """
    chosen = tuple(tasks or TASKS)
    unknown = [t for t in chosen if t not in TASKS]
    if unknown:
        raise UserError(f"--tasks: unknown task(s) {unknown}; expected some of {list(TASKS)}")
    return Experiment(
        name="mimic",
        description="MIMIC-III: mortality and two ICD-9 groups (paper Table 2)",
        modalities=MODALITIES,
        num_classes={task: TASKS[task] for task in chosen},
        load_data=load_data,
        build_unimodal=mimic_unimodal_classifier,
        build_inter={"lf": mimic_late_fusion},
        recipe=Recipe(pretrain=STAGE, finetune=STAGE),
        groups=chosen,
        needs_data_dir=True,
    )
