"""``i2m2 fit --experiment NAME --method METHOD``: one method of any experiment under LightningCLI."""

from __future__ import annotations

import inspect
from pathlib import Path

from i2m2.catalog import build_experiment, get_factory
from i2m2.experiment import FINETUNED_METHODS, Experiment
from i2m2.models.methods import build_method
from i2m2.training.lightning_module import MethodModule


def load_experiment(ref: str, data_dir: Path | None = None) -> Experiment:
    """Build experiment ``ref``; a factory that takes ``data_dir`` (e.g. ``features``) receives it."""
    factory = get_factory(ref)
    takes_data_dir = "data_dir" in inspect.signature(factory).parameters
    return build_experiment(factory, ref, **({"data_dir": data_dir} if takes_data_dir else {}))


class ExperimentMethodModule(MethodModule):
    """One method of an experiment, with the experiment's stage settings unless changed here.

    This trains a single job; ``i2m2 run`` runs the two-stage recipe over every method and seed.

    Args:
        experiment: a name from ``i2m2 experiments``, ``path/to/file.py:factory`` or ``module:factory``.
        method: ``unimodal:<modality>``, ``intra``, ``inter`` or ``i2m2``.
        group: the regime or task (default: the experiment's first).
        fusion: the inter expert's fusion (default: the experiment's first).
        all_subsets: one inter expert per subset of two or more modalities.
        data_dir: the dataset folder (for experiments whose factory reads it).
        optimizer: default: the experiment's recipe for this method.
        lr: default: the experiment's recipe for this method.
        weight_decay: default: the experiment's recipe for this method.
        momentum: default: the experiment's recipe for this method.
    """

    def __init__(
        self,
        experiment: str,
        method: str = "i2m2",
        group: str | None = None,
        fusion: str | None = None,
        all_subsets: bool = False,
        data_dir: Path | None = None,
        optimizer: str | None = None,
        lr: float | None = None,
        weight_decay: float | None = None,
        momentum: float | None = None,
    ) -> None:
        built = load_experiment(experiment, data_dir)
        group = built.groups[0] if group is None else group
        if group not in built.groups:
            raise ValueError(
                f"--group: unknown group '{group}' of '{built.name}'; expected one of {list(built.groups)}"
            )
        fusion = fusion or built.fusions()[0]
        if fusion not in built.build_inter:
            raise ValueError(
                f"--fusion: unknown fusion '{fusion}'; expected one of {list(built.build_inter)}"
            )
        classes = built.classes(group)
        model = build_method(
            method,
            built.modalities,
            unimodal=lambda m: built.build_unimodal(m, classes, group),
            inter=lambda mods: built.build_inter[fusion](mods, classes, group),
            all_subsets=all_subsets,
            num_classes=classes,
            num_tasks=built.objective.num_tasks if built.objective is not None else None,
        )
        stage = (
            built.recipe.stage2(method)
            if method in FINETUNED_METHODS
            else built.recipe.stage1(method.removeprefix("unimodal:"))
        )
        super().__init__(
            model,
            classes,
            optimizer or stage.optimizer,
            stage.lr if lr is None else lr,
            stage.weight_decay if weight_decay is None else weight_decay,
            stage.momentum if momentum is None else momentum,
            job={"experiment": experiment, "method": method, "group": group, "fusion": fusion},
            objective=built.objective,
        )
