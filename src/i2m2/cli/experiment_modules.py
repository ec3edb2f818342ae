"""``i2m2 fit --experiment NAME --method METHOD``: one method of any experiment as LightningCLI classes.

Both classes resolve the experiment by name (``avmnist``, ``FILE.py:factory``, ``module:factory``) through
one per-process cache, so its factory runs once; the model comes from
:meth:`~i2m2.experiment.Experiment.build_model` and its training settings from
:meth:`~i2m2.experiment.Experiment.stage_config`, as in ``i2m2 run``. This trains a single job; ``i2m2 run``
runs the two-stage recipe over every method and seed.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from torch.optim import Optimizer

from i2m2.catalog import ExperimentRef, get_factory
from i2m2.cli.recipe_options import recipe_with_changes
from i2m2.experiment import Experiment, Splits, StageChanges, StageConfig
from i2m2.training.datamodule import SplitsDataModule
from i2m2.training.fit import recipe_callbacks
from i2m2.training.lightning_module import MethodModule


def load_experiment(
    ref: str, data_dir: Path | None = None, options: dict[str, Any] | None = None
) -> Experiment:
    """Experiment ``ref`` built with the factory's ``options``, once per process; a factory that takes
    ``data_dir`` receives it."""
    options = dict(options or {})
    if "data_dir" in inspect.signature(get_factory(ref)).parameters:
        options["data_dir"] = data_dir
    return ExperimentRef.of(ref, **options).build()


def method_stage(
    experiment: Experiment,
    method: str,
    pretrain: StageChanges | None = None,
    finetune: StageChanges | None = None,
    experts: dict[str, StageChanges] | None = None,
    finetune_methods: dict[str, StageChanges] | None = None,
) -> StageConfig:
    """The settings ``method`` trains with: the experiment's recipe with these changes, as ``i2m2 run``."""
    recipe = recipe_with_changes(experiment, pretrain, finetune, experts, finetune_methods)
    return replace(experiment, recipe=recipe).stage_config(method)


class ExperimentMethodModule(MethodModule):
    """One method of an experiment, trained with the experiment's recipe (changed as ``i2m2 run`` does).

    Args:
        experiment: a name from ``i2m2 experiments``, ``path/to/file.py:factory`` or ``module:factory``.
        method: ``unimodal:<modality>``, ``intra``, ``inter`` or ``i2m2`` (or ``inter[<fusion>]``, ...).
        group: the regime or task (default: the experiment's first).
        fusion: the inter expert's fusion (default: the experiment's first).
        all_subsets: one inter expert per subset of two or more modalities.
        data_dir: the dataset folder (for experiments whose factory reads it).
        pretrain: changes to the recipe's stage 1 (every expert).
        finetune: changes to the recipe's stage 2 (intra and I2M2).
        experts: stage-1 changes per expert (a modality or ``inter``).
        finetune_methods: stage-2 changes per method (``intra`` or ``i2m2``).
        options: the experiment factory's keyword arguments (``{"n_train": 400}``).
    """

    def __init__(
        self,
        experiment: str,
        method: str = "i2m2",
        group: str | None = None,
        fusion: str | None = None,
        all_subsets: bool = False,
        data_dir: Path | None = None,
        pretrain: StageChanges | None = None,
        finetune: StageChanges | None = None,
        experts: dict[str, StageChanges] | None = None,
        finetune_methods: dict[str, StageChanges] | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        built = load_experiment(experiment, data_dir, options)
        group = built.check_group(group)
        stage = method_stage(built, method, pretrain, finetune, experts, finetune_methods)
        super().__init__(
            built.build_model(method, group, fusion, all_subsets),
            stage.optimizer,
            stage.lr,
            stage.weight_decay,
            stage.momentum,
            job={"experiment": experiment, "method": method, "group": group, "fusion": fusion},
            objective=built.objective,
        )
        self.stage = stage
        self.monitor = built.monitor

    def configure_callbacks(self) -> list[pl.Callback]:
        """The recipe's BatchNorm mode, non-finite-loss stop and early stopping (its patience)."""
        return recipe_callbacks(self.stage, self.monitor, dict(self.hparams.get("job") or {}))

    def configure_gradient_clipping(
        self,
        optimizer: Optimizer,
        gradient_clip_val: int | float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """The recipe's clipping unless ``--trainer.gradient_clip_val`` is given."""
        value = gradient_clip_val if gradient_clip_val is not None else self.stage.gradient_clip_val
        self.clip_gradients(
            optimizer, gradient_clip_val=value, gradient_clip_algorithm=gradient_clip_algorithm
        )


class ExperimentDataModule(SplitsDataModule):
    """The data of any experiment, by name or ``FILE.py:FACTORY`` (``i2m2 run`` loads the same splits).

    Args:
        experiment: a name from ``i2m2 experiments``, ``path/to/file.py:factory`` or ``module:factory``.
        group: the regime or task within the experiment (default: its first).
        data_dir: the dataset folder, for experiments that read files.
        seed: seeds the split and any sampling.
        batch_size: examples per batch (default: the method's recipe, when the model is an
            :class:`ExperimentMethodModule`; else 64).
        num_workers: DataLoader workers.
        options: the experiment factory's keyword arguments.
    """

    def __init__(
        self,
        experiment: str,
        group: str | None = None,
        data_dir: Path | None = None,
        seed: int = 0,
        batch_size: int | None = None,
        num_workers: int = 0,
        options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size or 64, num_workers=num_workers)
        self.options = options
        self.given_batch_size = batch_size
        self.experiment = experiment
        self.group = group
        self.data_dir = data_dir
        self.seed = seed

    def load_splits(self) -> Splits:
        experiment = load_experiment(self.experiment, self.data_dir, self.options)
        return experiment.load_splits(experiment.check_group(self.group), self.data_dir, self.seed)

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        module: Any = self.trainer.lightning_module if self.trainer is not None else None
        if self.given_batch_size is None and isinstance(getattr(module, "stage", None), StageConfig):
            self.batch_size = module.stage.batch_size  # the recipe's, like i2m2 run
