"""The recipe's changes as options, read the same way by ``i2m2 run`` and ``i2m2 fit``.

``--pretrain.lr``, ``--finetune.max_epochs``, ``--experts.<modality or inter>.lr`` and
``--finetune_methods.<intra or i2m2>.lr`` change the experiment's recipe; a field left out keeps the
recipe's value (:meth:`i2m2.experiment.Recipe.changed`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from i2m2.errors import UserError

if TYPE_CHECKING:  # torch comes with these: the command's start stays light
    from jsonargparse import ArgumentParser

    from i2m2.experiment import Experiment, Recipe, StageChanges

RECIPE_OPTIONS = ("pretrain", "finetune", "experts", "finetune_methods")


def add_recipe_arguments(parser: ArgumentParser, prefix: str = "") -> None:
    """``--pretrain``, ``--finetune``, ``--experts`` and ``--finetune_methods`` (under ``prefix``)."""
    from i2m2.experiment import StageChanges
    from i2m2.models.methods import STAGE2_METHODS

    parser.add_argument(
        f"--{prefix}pretrain", type=StageChanges, default=StageChanges(), help="stage-1 changes"
    )
    parser.add_argument(
        f"--{prefix}finetune", type=StageChanges, default=StageChanges(), help="stage-2 changes"
    )
    parser.add_argument(
        f"--{prefix}experts",
        type=dict[str, StageChanges],
        default={},
        help="stage-1 changes per expert (a modality or inter)",
    )
    parser.add_argument(
        f"--{prefix}finetune_methods",
        type=dict[str, StageChanges],
        default={},
        help=f"stage-2 changes per method ({' or '.join(STAGE2_METHODS)}), applied after --finetune",
    )


def changes(value: Any) -> StageChanges:
    """A parsed ``StageChanges`` (jsonargparse keeps a dataclass option a namespace until instantiated)."""
    from jsonargparse import Namespace

    from i2m2.experiment import StageChanges

    if isinstance(value, StageChanges):
        return value
    return StageChanges(**(value.as_dict() if isinstance(value, Namespace) else dict(value or {})))


def recipe_with_changes(
    experiment: Experiment,
    pretrain: Any = None,
    finetune: Any = None,
    experts: Any = None,
    finetune_methods: Any = None,
) -> Recipe:
    """The experiment's recipe with a command line's changes; unknown expert or method names refused."""
    from i2m2.models.methods import LOGISTIC, STAGE2_METHODS

    known = {"experts": {*experiment.modalities, "inter", LOGISTIC}, "finetune_methods": set(STAGE2_METHODS)}
    for key, given in (("experts", experts), ("finetune_methods", finetune_methods)):
        unknown = sorted(set(given or {}) - known[key])
        if unknown:
            raise UserError(f"--{key}: unknown name(s) {unknown}; expected some of {sorted(known[key])}")
    return experiment.recipe.changed(
        changes(pretrain),
        changes(finetune),
        {n: changes(c) for n, c in (experts or {}).items()},
        {n: changes(c) for n, c in (finetune_methods or {}).items()},
    )
