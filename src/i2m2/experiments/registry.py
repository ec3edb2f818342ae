"""Experiments by name: ``@register_experiment`` on a function that returns an :class:`Experiment`."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from i2m2.errors import UserError
from i2m2.experiments.spec import Experiment

ExperimentFactory = Callable[[], Experiment]
EXPERIMENTS: dict[str, ExperimentFactory] = {}
# Modules that register experiments; imported on first lookup so that `import i2m2` stays light.
_EXPERIMENT_MODULES = ("synthetic", "avmnist", "mimic", "easy_vqa")


def register_experiment(name: str) -> Callable[[ExperimentFactory], ExperimentFactory]:
    """Decorator adding an experiment factory under ``name``."""

    def add(factory: ExperimentFactory) -> ExperimentFactory:
        EXPERIMENTS[name] = factory
        return factory

    return add


def _load_all() -> None:
    for module in _EXPERIMENT_MODULES:
        try:
            import_module(f"i2m2.experiments.{module}")
        except ModuleNotFoundError as err:
            if err.name != f"i2m2.experiments.{module}":
                raise


def experiment_names() -> list[str]:
    _load_all()
    return sorted(EXPERIMENTS)


def get_experiment(name: str) -> Experiment:
    """The experiment registered as ``name``; a :class:`UserError` listing the known names otherwise."""
    _load_all()
    if name not in EXPERIMENTS:
        raise UserError(f"unknown experiment '{name}'; expected one of {sorted(EXPERIMENTS)}")
    return EXPERIMENTS[name]()
