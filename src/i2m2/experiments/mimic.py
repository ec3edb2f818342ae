"""MIMIC-III (paper Table 2): static-only, time-series-only, intra, inter (LF) and I2M2 for three tasks.

``--data-dir`` is MultiBench's ``im.pk`` or the folder holding it (see :mod:`i2m2.data.mimic`). ``mimic``
runs the three tasks as groups (6 classes for mortality, 2 for each ICD-9 group); ``--tasks`` picks some.

Models as MultiBench's ``examples/healthcare/mimic_*.py`` build them: static encoder ``MLP(5, 10, 10)``;
time-series encoder a GRU(12 -> 30) whose 24 hidden states are all read (24 * 30 = 720 features, as
MultiBench's flattening does); heads ``MLP(in, 40, classes)``; late fusion concatenates 10 + 720 = 730
features. MultiBench's MLPs use ReLU (the paper's text says LeakyReLU; we follow the code the paper cites).

Recipes (``--recipe``; ``docs/mimic.md``, ``docs/notes/authors-code-recipes.md``): ``paper`` (default,
Appendix B: RMSprop lr 1e-3, batch 40, 20 epochs for every model and both stages) and ``authors-code``
(the released ``mimic_main.py``: the same optimizer with weight decay 0, clipping at 8, early stopping after
11 epochs without improvement for inter/intra/I2M2 and none for the unimodal jobs, and a ``GRU -> per-step
Linear(30, 15)`` time-series encoder for the unimodal and intra experts). The authors' intra and I2M2 train
from scratch: add ``--from-scratch``. Not reproduced: their standardization uses statistics of all rows,
test included, and they select ICD-9 checkpoints by validation AUPRC (one monitor per experiment here).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Literal

from torch import nn

from i2m2.catalog import register_experiment
from i2m2.data.mimic import TASKS, load_mimic
from i2m2.data.multimodal_dataset import DataSplits
from i2m2.errors import UserError
from i2m2.experiment import Experiment, Recipe, StageChanges, StageConfig
from i2m2.models.encoders import GRUEncoder
from i2m2.models.fusion import LateFusion
from i2m2.models.mlp import MLP

MODALITIES = ("static", "timeseries")
STATIC_FEATURES, STATIC_HIDDEN = 5, 10
SERIES_STEPS, SERIES_FEATURES, GRU_HIDDEN = 24, 12, 30
STEP_FEATURES = 15  # authors-code: GRUWithLinear(12, 30, 15) for the unimodal/intra time-series experts
HEAD_HIDDEN = 40
# The split is the same for every run seed (MultiBench's is fixed too), so seeds vary only the
# initialization and the batch order, and every method is tested on the same rows.
SPLIT_SEED = 0
# Paper Appendix B: RMSprop, lr 1e-3, batch 40, 20 epochs, for every model and both stages.
STAGE = StageConfig(optimizer="rmsprop", lr=1e-3, max_epochs=20, batch_size=40)

RecipeName = Literal["paper", "authors-code"]
# authors-code: divyam3897/I2M2 at commit 7742765, paths relative to avmnist_and_mimic/. No MIMIC job passes
# an optimizer, so every job gets the training functions' defaults.
AUTHORS_STAGE = StageConfig(  # the unimodal jobs
    optimizer="rmsprop",  # training_structures/unimodal.py:14 (default optimtype)
    lr=1e-3,  # unimodal.py:14 (default)
    weight_decay=0.0,  # unimodal.py:14 (default)
    max_epochs=20,  # mimic_main.py:48-75
    batch_size=40,  # datasets/mimic/get_data.py:14
    gradient_clip_val=8.0,  # unimodal.py:62
    patience=None,  # unimodal.py:14 (early_stop=False)
)
# "patience > 10" stops after 11 epochs without a strictly better validation metric = EarlyStopping(11).
AUTHORS_EARLY_STOP = StageChanges(patience=11)  # inter_modality.py:90,262; intra_modality.py:19,196;
# inter_and_intra_modality.py:23,241. Also set per method so that it holds under --from-scratch, which
# otherwise takes stage 1's (unimodal) patience: the authors' intra and I2M2 are trained from scratch
# (mimic_main.py:113-219 load no stage-1 checkpoint).
AUTHORS_RECIPE = Recipe(
    pretrain=AUTHORS_STAGE,
    finetune=AUTHORS_EARLY_STOP.applied_to(AUTHORS_STAGE),
    experts={"inter": AUTHORS_EARLY_STOP},
    finetune_methods={"intra": AUTHORS_EARLY_STOP, "i2m2": AUTHORS_EARLY_STOP},
)
RECIPES: dict[str, Recipe] = {"paper": Recipe(pretrain=STAGE, finetune=STAGE), "authors-code": AUTHORS_RECIPE}


def mimic_encoder(modality: str) -> tuple[nn.Module, int]:
    """The encoder of ``static`` or ``timeseries`` and its number of output features."""
    if modality == "static":
        return MLP(STATIC_FEATURES, [STATIC_HIDDEN], STATIC_HIDDEN), STATIC_HIDDEN
    if modality == "timeseries":
        gru = GRUEncoder(SERIES_FEATURES, GRU_HIDDEN, num_steps=SERIES_STEPS)
        return gru, gru.out_features
    raise ValueError(f"unknown MIMIC modality '{modality}'; expected one of {list(MODALITIES)}")


def mimic_unimodal_classifier(
    modality: str, num_classes: int, group: str = "", step_linear: bool = False
) -> nn.Module:
    """Encoder + ``MLP(features, 40, classes)``: the static-only and time-series-only rows.

    ``step_linear`` (authors-code): the time series' 24 GRU states each go through one ``Linear(30, 15)``
    before flattening (360 features), as MultiBench's ``GRUWithLinear(12, 30, 15, flatten=True)``
    (``unimodals/common_models.py:230-279``; used at ``mimic_main.py:51,60,69,116,138,159,182,196,209``).
    """
    encoder, features = mimic_encoder(modality)
    if step_linear and modality == "timeseries":
        encoder = nn.Sequential(
            encoder,
            nn.Unflatten(1, (SERIES_STEPS, GRU_HIDDEN)),
            nn.Linear(GRU_HIDDEN, STEP_FEATURES),
            nn.Flatten(1),
        )
        features = SERIES_STEPS * STEP_FEATURES
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
def mimic(tasks: list[str] | None = None, recipe: RecipeName = "paper") -> Experiment:
    """MIMIC-III (paper Table 2): static, time series, intra, inter and I2M2, one group per task.

    Args:
        tasks: some of ``mortality``, ``icd9_140_239``, ``icd9_460_519`` (default: all three).
        recipe: paper (Appendix B) or authors-code (the released script; add --from-scratch for its
            intra and I2M2).
    """
    if recipe not in RECIPES:
        raise UserError(f"--recipe: unknown recipe {recipe!r}; expected one of {list(RECIPES)}")
    step_linear = recipe == "authors-code"
    chosen = tuple(tasks or TASKS)
    unknown = [t for t in chosen if t not in TASKS]
    if unknown:
        raise UserError(f"--tasks: unknown task(s) {unknown}; expected some of {list(TASKS)}")
    return Experiment(
        name="mimic",
        description=f"MIMIC-III: mortality and two ICD-9 groups (paper Table 2; {recipe} recipe)",
        modalities=MODALITIES,
        num_classes={task: TASKS[task] for task in chosen},
        load_data=load_data,
        build_unimodal=lambda m, classes, group: mimic_unimodal_classifier(m, classes, group, step_linear),
        build_inter={"lf": mimic_late_fusion},
        recipe=copy.deepcopy(RECIPES[recipe]),
        groups=chosen,
        needs_data_dir=True,
    )
