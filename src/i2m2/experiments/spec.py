"""What an experiment is: its data, its experts, and its training recipe, independent of the runner."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from torch import nn

from i2m2.data.multimodal_dataset import DataSplits
from i2m2.models.expert import Expert

Optimizer = Literal["sgd", "adam", "adamw", "rmsprop"]


@dataclass
class StageConfig:
    """Optimization settings of one training stage (or of one expert in stage 1).

    Args:
        optimizer: ``sgd`` (with ``momentum``), ``adam``, ``adamw`` or ``rmsprop``.
        lr: learning rate.
        weight_decay: L2 penalty (decoupled for adamw).
        momentum: SGD momentum.
        max_epochs: upper bound on epochs; early stopping may end sooner.
        batch_size: examples per optimizer step.
        gradient_clip_val: clip the gradient norm to this value (None: no clipping).
        patience: early-stopping patience in epochs on the monitored validation metric (None: off;
            the best checkpoint is still the one tested).
    """

    optimizer: Optimizer = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    max_epochs: int = 20
    batch_size: int = 64
    gradient_clip_val: float | None = None
    patience: int | None = None


# (group, data_dir, seed) -> splits. ``group`` is a regime or task ("" when the experiment has none).
DataLoaderFn = Callable[[str, "Path | None", int], DataSplits]
# (modality, group) -> a classifier ``x -> logits`` of that modality.
UnimodalBuilder = Callable[[str, str], nn.Module]
# (modalities, group) -> an inter-modality expert over them.
InterBuilder = Callable[[tuple[str, ...], str], Expert]


@dataclass
class Experiment:
    """One comparison of the paper's methods.

    Args:
        name: the name used by ``i2m2 run NAME``.
        description: one line for ``--help`` and the results table.
        modalities: the modalities, in order.
        num_classes: C, or a mapping group -> C when groups are tasks with different label sets.
        load_data: builds the splits of one group; model selection uses only the validation split.
        build_unimodal: builds each modality's classifier.
        build_inter: fusion name -> inter expert builder. More than one fusion gives rows such as
            ``inter[lrtf]`` and ``i2m2[lrtf]``.
        pretrain: stage-1 settings, one for all experts or per expert name (a modality or ``inter``).
        finetune: stage-2 settings (joint fine-tuning of intra and I2M2; also ``from_scratch`` training).
        groups: regimes or tasks, each an independent comparison; ``("",)`` for none.
        needs_data_dir: whether ``--data-dir`` is required.
        monitor: validation metric for early stopping and the best checkpoint (``acc``, ``auroc``, ...).
        group_names: optional names of per-example groups (e.g. question types) for analysis plots.
    """

    name: str
    description: str
    modalities: tuple[str, ...]
    num_classes: int | Mapping[str, int]
    load_data: DataLoaderFn
    build_unimodal: UnimodalBuilder
    build_inter: Mapping[str, InterBuilder]
    pretrain: StageConfig | Mapping[str, StageConfig] = field(default_factory=StageConfig)
    finetune: StageConfig = field(default_factory=StageConfig)
    groups: tuple[str, ...] = ("",)
    needs_data_dir: bool = False
    monitor: str = "acc"
    group_names: tuple[str, ...] = ()

    def classes(self, group: str) -> int:
        """The number of classes of one group."""
        return self.num_classes if isinstance(self.num_classes, int) else self.num_classes[group]

    def stage1_config(self, expert: str) -> StageConfig:
        """Stage-1 settings of one expert (``inter`` covers every inter expert)."""
        if isinstance(self.pretrain, StageConfig):
            return self.pretrain
        key = "inter" if expert.startswith("inter") else expert
        return self.pretrain[key]
