"""What an experiment is: modalities, classes, data, expert builders and a two-stage recipe, stated once.

A built-in experiment (``src/i2m2/experiments/<name>.py``) and a user's own (``my_experiment.py:factory``,
``my_package.module:factory`` or an ``i2m2.experiments`` entry point) are the same thing: a function that
returns an :class:`Experiment`. Its keyword arguments become command-line options of ``i2m2 run``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

from torch import Tensor, nn
from torch.utils.data import Dataset

from i2m2.models.expert import Expert
from i2m2.objectives import Objective

Optimizer = Literal["sgd", "adam", "adamw", "rmsprop"]
# How BatchNorm normalizes at validation and test (see i2m2.training.batchnorm).
BNStats = Literal["running", "precise", "batch"]
BN_STATS: tuple[str, ...] = get_args(BNStats)


@dataclass
class StageConfig:
    """Optimization settings of one training stage (or of one expert in stage 1).

    Args:
        optimizer: ``sgd`` (with ``momentum``), ``adam``, ``adamw`` or ``rmsprop``.
        lr: learning rate (> 0).
        weight_decay: L2 penalty (decoupled for adamw; >= 0).
        momentum: SGD momentum (>= 0).
        max_epochs: upper bound on epochs (>= 1); early stopping may end sooner.
        batch_size: examples per optimizer step (>= 1), shared among the processes under DDP.
        gradient_clip_val: clip the gradient norm to this value (> 0; None: no clipping).
        patience: early-stopping patience in epochs on the monitored validation metric (>= 0; None: off;
            the best validation epoch is still the one tested).
        bn_stats: BatchNorm at validation and test: ``running`` (eval mode, the running averages kept
            during training), ``precise`` (eval mode, running statistics first recomputed over the
            training set) or ``batch`` (each evaluated batch's own statistics, as the authors' unimodal
            script; results then depend on batch size and composition).
    """

    optimizer: Optimizer = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    max_epochs: int = 20
    batch_size: int = 64
    gradient_clip_val: float | None = None
    patience: int | None = None
    bn_stats: BNStats = "running"

    def __post_init__(self) -> None:
        check_stage_values(self, "")


@dataclass
class StageChanges:
    """Changes to one expert's stage-1 settings; a field left ``None`` keeps the shared ``pretrain`` value.

    (A change cannot turn clipping or early stopping off for one expert: set that in ``pretrain``.)
    """

    optimizer: Optimizer | None = None
    lr: float | None = None
    weight_decay: float | None = None
    momentum: float | None = None
    max_epochs: int | None = None
    batch_size: int | None = None
    gradient_clip_val: float | None = None
    patience: int | None = None
    bn_stats: BNStats | None = None

    def __post_init__(self) -> None:
        check_stage_values(self, "")

    def applied_to(self, base: StageConfig) -> StageConfig:
        return replace(base, **{f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None})


def check_stage_values(stage: StageConfig | StageChanges, where: str) -> None:
    """Range checks that say which setting is wrong and what it must be (types are checked by the parser)."""
    limits: dict[str, tuple[Callable[[Any], bool], str]] = {
        "lr": (lambda v: v > 0, "> 0"),
        "weight_decay": (lambda v: v >= 0, ">= 0"),
        "momentum": (lambda v: v >= 0, ">= 0"),
        "max_epochs": (lambda v: v >= 1, ">= 1"),
        "batch_size": (lambda v: v >= 1, ">= 1"),
        "gradient_clip_val": (lambda v: v > 0, "> 0 (or null for no clipping)"),
        "patience": (lambda v: v >= 0, ">= 0 (or null for no early stopping)"),
    }
    if stage.bn_stats is not None and stage.bn_stats not in BN_STATS:
        raise ValueError(f"{where}bn_stats: expected one of {list(BN_STATS)}, got {stage.bn_stats!r}")
    for name, (ok, expected) in limits.items():
        value = getattr(stage, name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value or not ok(value):
            raise ValueError(f"{where}{name}: expected a number {expected}, got {value!r}")


@dataclass
class Recipe:
    """The two-stage recipe: each expert trained alone (``pretrain``), then products fine-tuned jointly.

    Args:
        pretrain: stage-1 settings of every expert.
        finetune: stage-2 settings (joint fine-tuning of intra and I2M2; also their ``--from-scratch`` runs).
        experts: per-expert changes to ``pretrain``, keyed by a modality or ``inter`` (every inter expert).
        finetune_methods: per-method changes to ``finetune``, keyed ``intra`` or ``i2m2`` (e.g. a recipe
            that fine-tunes intra and I2M2 at different rates); applied last, so they hold under
            ``--from-scratch`` too.
    """

    pretrain: StageConfig = field(default_factory=StageConfig)
    finetune: StageConfig = field(default_factory=StageConfig)
    experts: dict[str, StageChanges] = field(default_factory=dict)
    finetune_methods: dict[str, StageChanges] = field(default_factory=dict)

    def stage1(self, expert: str) -> StageConfig:
        """Stage-1 settings of one expert (``inter``, ``inter:a+b`` and ``inter[lrtf]`` use ``inter``)."""
        key = "inter" if expert.startswith("inter") else expert
        changes = self.experts.get(key)
        return self.pretrain if changes is None else changes.applied_to(self.pretrain)

    def stage2(self, method: str, base: StageConfig | None = None) -> StageConfig:
        """Stage-2 settings of ``intra`` or ``i2m2``: ``finetune`` (or ``base``, e.g. a from-scratch budget)
        with the method's ``finetune_methods`` changes applied last."""
        config = self.finetune if base is None else base
        changes = self.finetune_methods.get(method)
        return config if changes is None else changes.applied_to(config)


# The stage-2 methods a recipe's ``finetune_methods`` may change.
FINETUNED_METHODS = ("intra", "i2m2")


class Splits(Protocol):
    """Train/validation/test sets of one group; any map-style datasets yielding ``({modality: x}, y)``.

    :class:`i2m2.data.multimodal_dataset.DataSplits` (in memory) is one implementation; a split may also
    read HDF5 slices or memory-mapped arrays lazily. ``num_classes`` is C.
    """

    train: Dataset[tuple[dict[str, Tensor], Tensor]]
    val: Dataset[tuple[dict[str, Tensor], Tensor]]
    test: Dataset[tuple[dict[str, Tensor], Tensor]]
    num_classes: int


# (group, data_dir, seed) -> splits. ``group`` is a regime or task ("" when the experiment has none).
DataLoaderFn = Callable[[str, "Path | None", int], Any]
# (modality, num_classes, group) -> a classifier ``x -> logits`` of that modality.
UnimodalBuilder = Callable[[str, int, str], nn.Module]
# (modalities, num_classes, group) -> an inter-modality expert over them.
InterBuilder = Callable[[tuple[str, ...], int, str], Expert]


@dataclass
class Experiment:
    """One comparison of the paper's methods: every row of its table comes from these fields.

    Args:
        name: the name used by ``i2m2 run NAME`` and in the results.
        description: one line for ``i2m2 experiments`` and the results' title.
        modalities: the modalities, in order (batch keys).
        num_classes: C, or a mapping group -> C when groups are tasks with different label sets. Builders
            receive it; nothing else states it.
        load_data: builds the splits of one group; model selection uses only the validation split.
        build_unimodal: builds each modality's classifier.
        build_inter: fusion name -> inter expert builder. More than one fusion gives rows such as
            ``inter[lrtf]`` and ``i2m2[lrtf]``.
        recipe: the two-stage training recipe.
        groups: regimes or tasks, each an independent comparison; ``("",)`` for none.
        needs_data_dir: whether ``--data-dir`` is required.
        monitor: validation metric for early stopping and the best checkpoint (``acc``, ``auroc``, ...).
        group_names: optional names of per-example groups (e.g. question types) for analysis plots.
        default_fusions: the fusions run when ``--fusion`` is not given (default: all of ``build_inter``).
        objective: loss and metrics when the target is not one label per example (several findings,
            soft answers); default: single-label classification.
        default_methods: the rows run when ``--methods`` is not given (default: every method).
    """

    name: str
    description: str
    modalities: tuple[str, ...]
    num_classes: int | Mapping[str, int]
    load_data: DataLoaderFn
    build_unimodal: UnimodalBuilder
    build_inter: Mapping[str, InterBuilder]
    recipe: Recipe = field(default_factory=Recipe)
    groups: tuple[str, ...] = ("",)
    needs_data_dir: bool = False
    monitor: str = "acc"
    group_names: tuple[str, ...] = ()
    default_fusions: tuple[str, ...] | None = None
    objective: Objective | None = None
    default_methods: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        self.modalities = tuple(self.modalities)
        self.groups = tuple(self.groups)
        if len(set(self.modalities)) != len(self.modalities) or not self.modalities:
            raise ValueError(f"experiment '{self.name}': modalities must be distinct and non-empty")
        if not self.build_inter and len(self.modalities) > 1:
            raise ValueError(f"experiment '{self.name}': build_inter needs at least one fusion")
        for group in self.groups:
            classes = self.classes(group)
            if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
                raise ValueError(
                    f"experiment '{self.name}': num_classes must be an int >= 2, got {classes!r}"
                )
        unknown = set(self.recipe.experts) - {*self.modalities, "inter"}
        if unknown:
            raise ValueError(
                f"experiment '{self.name}': recipe.experts names {sorted(unknown)}; "
                f"expected modalities {list(self.modalities)} or 'inter'"
            )
        unknown = set(self.recipe.finetune_methods) - set(FINETUNED_METHODS)
        if unknown:
            raise ValueError(
                f"experiment '{self.name}': recipe.finetune_methods names {sorted(unknown)}; "
                f"expected some of {list(FINETUNED_METHODS)}"
            )

    def classes(self, group: str) -> int:
        """The number of classes of one group."""
        if isinstance(self.num_classes, int):
            return self.num_classes
        if group not in self.num_classes:
            raise ValueError(f"experiment '{self.name}': no num_classes for group '{group}'")
        return self.num_classes[group]

    def fusions(self) -> tuple[str, ...]:
        """The fusions this run compares."""
        return self.default_fusions or tuple(self.build_inter)
