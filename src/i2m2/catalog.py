"""Finding experiments: built-in ones, other packages' (entry points) and a user's own file or module.

``i2m2 run REF`` takes any of

* a registered name (``avmnist``): the built-ins are every module of :mod:`i2m2.experiments`
  that  registers itself with :func:`register_experiment`, discovered at first lookup, not listed by hand;
* an entry point of the group ``i2m2.experiments`` published by another package
  (``name = "pkg.mod:factory"``);
* ``path/to/file.py:factory`` or ``package.module:factory``.

A factory is a function returning an :class:`~i2m2.experiment.Experiment`; its keyword arguments become
options of ``i2m2 run``.
"""

from __future__ import annotations

import importlib.util
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from i2m2.errors import UserError
from i2m2.experiment import Experiment

ExperimentFactory = Callable[..., Experiment]
ENTRY_POINT_GROUP = "i2m2.experiments"
_BUILTIN: dict[str, ExperimentFactory] = {}
_discovered = False


def register_experiment(name: str) -> Callable[[ExperimentFactory], ExperimentFactory]:
    """Decorator adding a built-in experiment factory under ``name``."""

    def add(factory: ExperimentFactory) -> ExperimentFactory:
        _BUILTIN[name] = factory
        return factory

    return add


def _discover_builtins() -> None:
    global _discovered
    if _discovered:
        return
    import i2m2.experiments as package

    for module in pkgutil.iter_modules(package.__path__):
        import_module(f"{package.__name__}.{module.name}")
    _discovered = True


def _entry_points() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def experiment_names() -> dict[str, str]:
    """Every experiment known by name -> where it comes from (``built-in`` or ``pkg.mod:factory``)."""
    _discover_builtins()
    names = dict.fromkeys(_BUILTIN, "built-in")
    for name, value in _entry_points().items():
        names.setdefault(name, value)
    return dict(sorted(names.items()))


def _load_from_file(path: Path, attribute: str, ref: str) -> object:
    if not path.is_file():
        raise UserError(f"experiment '{ref}': no such file {path}")
    module_name = f"i2m2_user_experiment_{abs(hash(path.resolve()))}"
    if module_name in sys.modules:  # run once per process, like an import
        return _attribute(sys.modules[module_name], attribute, ref)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"experiment '{ref}': {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]  # a file that failed to load is read again next time
        raise
    return _attribute(module, attribute, ref)


def _attribute(module: object, attribute: str, ref: str) -> object:
    if not hasattr(module, attribute):
        names = sorted(n for n in vars(module) if not n.startswith("_") and callable(getattr(module, n)))
        raise UserError(f"experiment '{ref}': no '{attribute}' in it; callables there: {names}")
    return getattr(module, attribute)


def _load_reference(ref: str) -> object:
    target, _, attribute = ref.rpartition(":")
    if not target or not attribute:
        raise UserError(f"experiment '{ref}': expected NAME, FILE.py:FACTORY or MODULE:FACTORY")
    if target.endswith(".py") or "/" in target or "\\" in target:
        return _load_from_file(Path(target), attribute, ref)
    try:
        module = import_module(target)
    except ModuleNotFoundError as err:
        raise UserError(f"experiment '{ref}': cannot import module '{err.name}'") from err
    return _attribute(module, attribute, ref)


def get_factory(ref: str) -> ExperimentFactory:
    """The factory named by ``ref`` (see the module docstring); a :class:`UserError` otherwise."""
    _discover_builtins()
    if ref in _BUILTIN:
        return _BUILTIN[ref]
    points = _entry_points()
    if ref in points:
        found = _load_reference(points[ref])
    elif ":" in ref:
        found = _load_reference(ref)
    else:
        raise UserError(
            f"unknown experiment '{ref}'; expected one of {list(experiment_names())}, "
            "or FILE.py:FACTORY / MODULE:FACTORY"
        )
    if not callable(found):
        raise UserError(f"experiment '{ref}': {found!r} is not a function returning an Experiment")
    return found


def build_experiment(factory: ExperimentFactory, ref: str, **options: object) -> Experiment:
    """Call a factory and check that it returned an :class:`Experiment`."""
    experiment = factory(**options)
    if not isinstance(experiment, Experiment):
        raise UserError(
            f"experiment '{ref}': the factory returned {type(experiment).__name__}, expected i2m2.Experiment"
        )
    return experiment


def get_experiment(ref: str, **options: object) -> Experiment:
    """The experiment ``ref`` built with ``options`` (the factory's keyword arguments)."""
    return build_experiment(get_factory(ref), ref, **options)


@dataclass(frozen=True)
class ExperimentRef:
    """An experiment that any process can rebuild: its reference and the factory's options.

    ``ref`` is a registered name, ``FILE.py:factory`` or ``module:factory``; ``options`` are the factory's
    keyword arguments (plain values, so the reference can be pickled to another process or machine).
    """

    ref: str
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, ref: str, **options: Any) -> ExperimentRef:
        return cls(ref, tuple(sorted(options.items())))

    def remember(self, experiment: Experiment) -> ExperimentRef:
        """Use ``experiment`` (already built from this reference) for it in this process."""
        _BUILT.clear()
        _BUILT[(self.ref, repr(self.options))] = experiment
        return self

    def build(self) -> Experiment:
        """The experiment, built once per process (a factory may read a dataset to learn its shapes)."""
        key = (self.ref, repr(self.options))
        if key not in _BUILT:
            _BUILT.clear()  # keep one: a process works on one experiment at a time
            _BUILT[key] = get_experiment(self.ref, **dict(self.options))
        return _BUILT[key]


_BUILT: dict[tuple[str, str], Experiment] = {}
