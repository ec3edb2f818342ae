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

from i2m2.errors import UserError
from i2m2.models.expert import Expert
from i2m2.models.i2m2 import I2M2
from i2m2.models.methods import (
    LOGISTIC,
    STAGE2_METHODS,
    UNIMODAL_PREFIX,
    build_logistic,
    build_method,
    method_base,
    row_fusion,
)
from i2m2.models.validation import check_modality_names
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
        key = "inter" if expert == "inter" or expert.startswith(("inter:", "inter[")) else expert
        changes = self.experts.get(key)
        return self.pretrain if changes is None else changes.applied_to(self.pretrain)

    def stage2(self, method: str, base: StageConfig | None = None) -> StageConfig:
        """Stage-2 settings of ``intra`` or ``i2m2``: ``finetune`` (or ``base``, e.g. a from-scratch budget)
        with the method's ``finetune_methods`` changes applied last."""
        config = self.finetune if base is None else base
        changes = self.finetune_methods.get(method)
        return config if changes is None else changes.applied_to(config)

    def changed(
        self,
        pretrain: StageChanges | None = None,
        finetune: StageChanges | None = None,
        experts: Mapping[str, StageChanges] | None = None,
        finetune_methods: Mapping[str, StageChanges] | None = None,
    ) -> Recipe:
        """This recipe with a user's changes on top. ``i2m2 run`` and ``i2m2 fit`` read them the same way:
        ``--pretrain.lr``, ``--finetune.max_epochs``, ``--experts.audio.lr``,
        ``--finetune_methods.intra.lr``. A field a change sets wins; per-name changes merge field by field."""
        return Recipe(
            pretrain=(pretrain or StageChanges()).applied_to(self.pretrain),
            finetune=(finetune or StageChanges()).applied_to(self.finetune),
            experts=_merged(self.experts, experts),
            finetune_methods=_merged(self.finetune_methods, finetune_methods),
        )


def _merged(
    base: Mapping[str, StageChanges], given: Mapping[str, StageChanges] | None
) -> dict[str, StageChanges]:
    merged = dict(base)
    for name, change in (given or {}).items():
        old = merged.get(name, StageChanges())
        merged[name] = StageChanges(
            **{
                f.name: v if (v := getattr(change, f.name)) is not None else getattr(old, f.name)
                for f in fields(StageChanges)
            }
        )
    return merged


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
        analyses: the ``i2m2 analyze`` analyses that apply to this experiment's runs, by name (see
            :data:`i2m2.analysis.report.ANALYSES`); ``None``: the generic ones (entropy, rescue, groups,
            missing modalities, sweep). Recorded in the run, so ``i2m2 analyze`` needs no experiment names.
        simulated: the data is a stand-in generated for the purpose (charts and tables say so).
        input_dims: the size of each modality's input flattened, when the inputs are vectors (or any fixed
            shape): adds the ``logistic`` row, a linear classifier on the concatenated inputs (stage-1
            settings, the ``logistic`` key of ``recipe.experts`` if any), the baseline a user tries first.
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
    analyses: tuple[str, ...] | None = None
    simulated: bool = False
    input_dims: Mapping[str, int] | None = None

    def __post_init__(self) -> None:
        self.modalities = tuple(self.modalities)
        self.groups = tuple(self.groups)
        check_modality_names(self.modalities, f"experiment '{self.name}'")
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
        if self.input_dims is not None and set(self.input_dims) != set(self.modalities):
            raise ValueError(
                f"experiment '{self.name}': input_dims names {sorted(self.input_dims)}; "
                f"expected the modalities {list(self.modalities)}"
            )
        unknown = set(self.recipe.experts) - {*self.modalities, "inter", LOGISTIC}
        if unknown:
            raise ValueError(
                f"experiment '{self.name}': recipe.experts names {sorted(unknown)}; "
                f"expected modalities {list(self.modalities)} or 'inter'"
            )
        unknown = set(self.recipe.finetune_methods) - set(STAGE2_METHODS)
        if unknown:
            raise ValueError(
                f"experiment '{self.name}': recipe.finetune_methods names {sorted(unknown)}; "
                f"expected some of {list(STAGE2_METHODS)}"
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

    def check_group(self, group: str | None) -> str:
        """``group``, or the first group when ``None``; a :class:`UserError` for an unknown one."""
        group = self.groups[0] if group is None else group
        if group not in self.groups:
            raise UserError(
                f"--group: unknown group '{group}' of '{self.name}'; expected one of {list(self.groups)}"
            )
        return group

    def check_fusion(self, fusion: str | None) -> str | None:
        """``fusion``, or the first compared one when ``None``; a :class:`UserError` for an unknown one."""
        if not self.build_inter:
            return None
        fusion = fusion or self.fusions()[0]
        if fusion not in self.build_inter:
            raise UserError(
                f"--fusion: unknown fusion '{fusion}' of '{self.name}'; "
                f"expected one of {list(self.build_inter)}"
            )
        return fusion

    def build_model(
        self, method: str, group: str | None = None, fusion: str | None = None, all_subsets: bool = False
    ) -> I2M2:
        """The model of one method for one group: the one place a method is assembled from the builders.

        Args:
            method: ``unimodal:<m>``, ``intra``, ``inter``, ``i2m2``, or a row naming its fusion
                (``inter[lrtf]``, ``i2m2[lrtf]``), or ``logistic`` (with ``input_dims``).
            group: the regime or task (default: the first).
            fusion: the inter experts' fusion when ``method`` names none (default: the first compared).
            all_subsets: one inter expert per subset of two or more modalities (paper Section 5).
        """
        group = self.check_group(group)
        if method == LOGISTIC:
            if self.input_dims is None or self.objective is not None:
                raise UserError(
                    f"experiment '{self.name}': the '{LOGISTIC}' row needs single-label data and "
                    "input_dims (the inputs' sizes)"
                )
            return build_logistic({m: self.input_dims[m] for m in self.modalities}, self.classes(group))
        base = method if method.startswith(UNIMODAL_PREFIX) else method_base(method)
        fusion = self.check_fusion(row_fusion(method) or fusion) if base in ("inter", "i2m2") else None
        classes = self.classes(group)

        def unimodal(modality: str) -> nn.Module:
            return self._built(self.build_unimodal(modality, classes, group), "build_unimodal", modality)

        def inter(modalities: tuple[str, ...]) -> Expert:
            assert fusion is not None
            built = self.build_inter[fusion](modalities, classes, group)
            return self._built(built, f"build_inter['{fusion}']", "+".join(modalities), Expert)

        try:
            return build_method(
                base,
                self.modalities,
                unimodal=unimodal,
                inter=inter,
                all_subsets=all_subsets,
                num_classes=classes,
                num_tasks=self.objective.num_tasks if self.objective is not None else None,
            )
        except ValueError as err:
            raise UserError(f"experiment '{self.name}': {err}") from err

    def _built(self, module: Any, builder: str, what: str, kind: type = nn.Module) -> Any:
        if not isinstance(module, kind):
            raise UserError(
                f"experiment '{self.name}': {builder} returned {type(module).__name__} for '{what}'; "
                f"expected a {kind.__module__.replace('torch.nn.modules.module', 'torch.nn')}.{kind.__name__}"
            )
        return module

    def stage_config(
        self, method: str, from_scratch: bool = False, max_epochs: int | None = None
    ) -> StageConfig:
        """The training settings of one method's job: stage 1 for an expert (with its ``experts`` changes),
        stage 2 for a product (with its ``finetune_methods`` changes). A product trained from scratch gets
        the stage-1 epoch budget and patience (the fine-tuning budget assumes pretrained experts and would
        starve it); ``max_epochs`` overrides every stage's epochs."""
        recipe = self.recipe
        base = method if method.startswith(UNIMODAL_PREFIX) else method_base(method)
        if base in STAGE2_METHODS:
            scratch = replace(
                recipe.finetune, max_epochs=recipe.pretrain.max_epochs, patience=recipe.pretrain.patience
            )
            config = recipe.stage2(base, scratch if from_scratch else None)
        else:
            config = recipe.stage1(method.removeprefix(UNIMODAL_PREFIX))
        return config if max_epochs is None else replace(config, max_epochs=max_epochs)

    def load_splits(self, group: str, data_dir: Path | None, seed: int) -> Splits:
        """The splits of one group, checked once against what the experiment declares (the number of
        classes and the modalities), so every job built from them agrees with its data."""
        splits = self.load_data(group, data_dir, seed)
        where = f"experiment '{self.name}'" + (f" group '{group}'" if group else "")
        if splits is None or not all(hasattr(splits, n) for n in ("train", "val", "test", "num_classes")):
            raise UserError(
                f"{where}: load_data returned {type(splits).__name__}; expected splits with train, val, test "
                "and num_classes (e.g. i2m2.DataSplits)"
            )
        expected = self.classes(group)
        if splits.num_classes != expected:
            raise UserError(
                f"{where}: the data has {splits.num_classes} classes, the experiment expects {expected}"
            )
        found = getattr(splits.train, "modalities", None)
        if found is not None and set(found) != set(self.modalities):
            raise UserError(
                f"{where}: the data has modalities {list(found)}, "
                f"the experiment declares {list(self.modalities)}"
            )
        for name in ("train", "val", "test"):
            split = getattr(splits, name)
            if hasattr(split, "__len__") and len(split) == 0:
                raise UserError(f"{where}: the {name} split is empty; expected at least one example")
        return splits
