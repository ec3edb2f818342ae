"""MIMIC-III (paper Table 2): static-only, time-series-only, intra, inter (LF) and I2M2 for three tasks.

``--data-dir`` is MultiBench's ``im.pk`` or the folder holding it (see :mod:`i2m2.data.mimic`). Models:
:mod:`i2m2.models.builders.mimic`. ``mimic`` runs the three tasks as groups (6 classes for mortality,
2 for each ICD-9 group); ``mimic-mortality``, ``mimic-icd9-140-239`` and ``mimic-icd9-460-519`` run one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import nn

from i2m2.data.mimic import TASKS, load_mimic
from i2m2.data.multimodal_dataset import DataSplits
from i2m2.errors import UserError
from i2m2.experiments.registry import register_experiment
from i2m2.experiments.spec import Experiment, StageConfig
from i2m2.models.builders.mimic import MODALITIES, mimic_late_fusion, mimic_unimodal_classifier
from i2m2.models.expert import Expert

# The split is the same for every run seed (MultiBench's is fixed too), so seeds vary only the
# initialization and the batch order, and every method is tested on the same rows.
SPLIT_SEED = 0
# Paper Appendix B: RMSprop, lr 1e-3, batch 40, 20 epochs, for every model and both stages.
STAGE = StageConfig(optimizer="rmsprop", lr=1e-3, max_epochs=20, batch_size=40)
DESCRIPTIONS = {
    "mortality": "MIMIC-III mortality (6 classes: 1 day, 2 days, 3 days, 1 week, 1 year, later)",
    "icd9_140_239": "MIMIC-III ICD-9 codes 140-239 (neoplasms), binary",
    "icd9_460_519": "MIMIC-III ICD-9 codes 460-519 (respiratory), binary",
}


def load_data(group: str, data_dir: Path | None, seed: int) -> DataSplits:
    if data_dir is None:
        raise UserError("the MIMIC experiments read files: pass --data-dir with im.pk or its folder")
    return load_mimic(data_dir, group, SPLIT_SEED)


def unimodal_classifier(modality: str, group: str) -> nn.Module:
    return mimic_unimodal_classifier(modality, TASKS[group])


def late_fusion(modalities: tuple[str, ...], group: str) -> Expert:
    return mimic_late_fusion(TASKS[group], modalities)


def mimic_experiment(name: str, tasks: tuple[str, ...], description: str) -> Experiment:
    """The comparison over ``tasks``, one group per task."""
    return Experiment(
        name=name,
        description=description,
        modalities=MODALITIES,
        num_classes={task: TASKS[task] for task in tasks},
        load_data=load_data,
        build_unimodal=unimodal_classifier,
        build_inter={"lf": late_fusion},
        pretrain=STAGE,
        finetune=STAGE,
        groups=tasks,
        needs_data_dir=True,
    )


@register_experiment("mimic")
def mimic() -> Experiment:
    return mimic_experiment(
        "mimic", tuple(TASKS), "MIMIC-III: mortality and two ICD-9 groups (paper Table 2)"
    )


def _register_task(task: str) -> Callable[[], Experiment]:
    name = "mimic-" + task.replace("_", "-")
    return register_experiment(name)(lambda: mimic_experiment(name, (task,), DESCRIPTIONS[task]))


for _task in TASKS:
    _register_task(_task)
