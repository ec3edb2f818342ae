"""What ``i2m2 tune`` searches: a few stage settings per method, each a range or a list of values.

Keys follow the recipe's (:meth:`i2m2.experiment.Recipe.changed`): ``pretrain.lr`` applies to every
stage-1 expert, ``experts.<modality or inter>.lr`` to one of them, ``finetune.lr`` to every stage-2
product and ``finetune_methods.<intra or i2m2>.lr`` to one. A value is written

* ``1e-5:1e-1:log`` (a log range; a grid takes each decade), ``0:0.9`` (a linear range; a grid takes 5
  points), ``1e-5:1e-1:log:9`` (with the grid's number of points), or
* ``0,1e-4,1e-2`` (a list; in YAML also ``[0, 1e-4, 1e-2]``); one value fixes the setting.

The default is the paper's: learning rate and weight decay on a log scale, for every method. The paper
(Appendix B) grid-searches both and reports its winners (Table B.6: lr 1e-6 to 1e-4, weight decay 1e-3 to
1e-1) but not the grid; :data:`DEFAULT_SPACE` spans those winners by decades, with the 1e-3 and 1e-2 rates of
Adam-style recipes and one smaller weight decay.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from i2m2.errors import UserError
from i2m2.experiment import StageChanges
from i2m2.models.methods import LOGISTIC, STAGE2_METHODS, UNIMODAL_PREFIX, method_base

# The settings a space may tune, and their type.
TUNABLE: dict[str, type] = {"lr": float, "weight_decay": float, "momentum": float, "batch_size": int}
DEFAULT_SPACE: dict[str, str] = {"lr": "1e-6:1e-2:log", "weight_decay": "1e-4:1e-1:log"}
LINEAR_POINTS = 5  # a grid's points on a linear range given without a count
STAGES = ("pretrain", "finetune")
PER_NAME = ("experts", "finetune_methods")


@dataclass(frozen=True)
class Dimension:
    """One tuned setting: a list of ``values``, or a range ``low..high`` (``log`` scale) with ``points``
    grid points."""

    name: str
    values: tuple[float, ...] | None = None
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    points: int = 0

    def grid(self) -> tuple[float, ...]:
        """The values a grid search tries, in increasing order."""
        if self.values is not None:
            return self.values
        if self.log:
            ratio = math.log10(self.high / self.low)
            count = self.points or max(2, round(ratio) + 1)
            found = [self.low * (self.high / self.low) ** (i / (count - 1)) for i in range(count)]
        else:
            count = self.points or LINEAR_POINTS
            found = [self.low + (self.high - self.low) * i / (count - 1) for i in range(count)]
        typed = [self._typed(float(f"{v:.6g}")) for v in found]
        return tuple(sorted(set(typed)))

    def _typed(self, value: float) -> float:
        return float(round(value)) if TUNABLE[self.name] is int else value

    def text(self) -> str:
        """The dimension as written on the command line (also how a study remembers its space)."""
        if self.values is not None:
            return ",".join(f"{v:g}" for v in self.values)
        scale = ":log" if self.log else ""
        count = f"{':lin' if not self.log else ''}:{self.points}" if self.points else ""
        return f"{self.low:g}:{self.high:g}{scale}{count}"


@dataclass
class StageSpace:
    """The ``--space.<stage>`` options: each a range (``1e-5:1e-1:log``) or values (``0,1e-4,1e-2``).

    Args:
        lr: learning rates to try.
        weight_decay: weight decays to try.
        momentum: SGD momenta to try.
        batch_size: batch sizes to try.
    """

    lr: str | float | list[float] | None = None
    weight_decay: str | float | list[float] | None = None
    momentum: str | float | list[float] | None = None
    batch_size: str | float | list[float] | None = None


@dataclass
class Space:
    """Per stage and per expert or method: setting -> :class:`Dimension`. A per-name entry overrides its
    stage's entry setting by setting; :meth:`for_method` resolves them."""

    pretrain: dict[str, Dimension] = field(default_factory=dict)
    finetune: dict[str, Dimension] = field(default_factory=dict)
    experts: dict[str, dict[str, Dimension]] = field(default_factory=dict)
    finetune_methods: dict[str, dict[str, Dimension]] = field(default_factory=dict)

    def for_method(self, method: str) -> dict[str, Dimension]:
        """The dimensions of one row's job: a stage-1 expert or a stage-2 product."""
        base = method_base(method)
        if base in STAGE2_METHODS:
            return self.finetune | self.finetune_methods.get(base, {})
        return self.pretrain | self.experts.get(expert_key(method), {})

    def texts(self) -> dict[str, Any]:
        """Plain text of every entry (a study's record of its space; ``--print_config``)."""
        plain: dict[str, Any] = {s: {n: d.text() for n, d in getattr(self, s).items()} for s in STAGES}
        for key in PER_NAME:
            plain[key] = {
                name: {n: d.text() for n, d in dims.items()} for name, dims in getattr(self, key).items()
            }
        return plain


def expert_key(method: str) -> str:
    """The recipe's ``experts`` key of a stage-1 row: its modality, ``logistic``, or ``inter``."""
    if method_base(method) == "unimodal":
        return method.removeprefix(UNIMODAL_PREFIX)
    return LOGISTIC if method == LOGISTIC else "inter"


def parse_dimension(name: str, value: Any, where: str) -> Dimension:
    """One ``--space`` value; a :class:`UserError` naming ``where`` and what was expected otherwise."""
    if name not in TUNABLE:
        raise UserError(f"{where}: unknown setting '{name}'; expected one of {list(TUNABLE)}")
    shown = f"{where} {value!r}" if not isinstance(value, str) else f"{where} {value}"
    if isinstance(value, bool) or value is None:
        raise UserError(f"{shown}: expected a range LOW:HIGH[:log] or values V1,V2,...")
    if isinstance(value, int | float):
        return _checked(Dimension(name, values=(float(value),)), shown)
    if isinstance(value, list | tuple):
        return _checked(Dimension(name, values=_numbers(list(value), shown)), shown)
    text = str(value).strip()
    if ":" in text:
        return _checked(_range(name, text, shown), shown)
    parts = [p for p in (p.strip() for p in text.split(",")) if p]
    return _checked(Dimension(name, values=_numbers(parts, shown)), shown)


def _numbers(parts: list[Any], shown: str) -> tuple[float, ...]:
    if not parts:
        raise UserError(f"{shown}: empty list; expected at least one value")
    try:
        numbers = [float(p) for p in parts]
    except (TypeError, ValueError) as err:
        raise UserError(f"{shown}: expected numbers, got {parts}") from err
    return tuple(sorted(set(numbers)))


def _range(name: str, text: str, shown: str) -> Dimension:
    parts = [p.strip() for p in text.split(":")]
    expected = "expected LOW:HIGH, LOW:HIGH:log or LOW:HIGH:log:POINTS (or :lin:POINTS)"
    if len(parts) < 2 or len(parts) > 4:
        raise UserError(f"{shown}: {expected}")
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError as err:
        raise UserError(f"{shown}: {expected}") from err
    scale = parts[2].lower() if len(parts) > 2 else "lin"
    if scale not in ("log", "lin"):
        raise UserError(f"{shown}: scale '{parts[2]}'; expected log or lin")
    points = 0
    if len(parts) == 4:
        if not parts[3].isdigit() or int(parts[3]) < 2:
            raise UserError(f"{shown}: grid points '{parts[3]}'; expected an integer >= 2")
        points = int(parts[3])
    if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
        raise UserError(f"{shown}: empty range; expected LOW < HIGH")
    if scale == "log" and low <= 0:
        raise UserError(f"{shown}: a log range needs LOW > 0 (log 0 is undefined); list 0 as a value instead")
    return Dimension(name, low=low, high=high, log=scale == "log", points=points)


def _checked(dimension: Dimension, shown: str) -> Dimension:
    """Every value a dimension can take passes the recipe's own range checks (lr > 0, ...)."""
    for value in (dimension.low, dimension.high) if dimension.values is None else dimension.values:
        typed = TUNABLE[dimension.name](value)
        if typed != value or not math.isfinite(value):
            raise UserError(f"{shown}: {dimension.name} {value:g}: expected an integer")
        try:
            StageChanges(**{dimension.name: typed})
        except ValueError as err:
            raise UserError(f"{shown}: {err}") from err
    return dimension


def default_space() -> Space:
    """The paper's space (:data:`DEFAULT_SPACE`) for both stages."""
    stage = {n: parse_dimension(n, v, f"default space {n}") for n, v in DEFAULT_SPACE.items()}
    return Space(pretrain=dict(stage), finetune=dict(stage))


def parse_space(
    given: Space | Mapping[str, Any] | None, modalities: tuple[str, ...], use_defaults: bool = True
) -> Space:
    """A :class:`Space` from nested (``{"pretrain": {"lr": ...}}``) or dotted (``{"pretrain.lr": ...}``)
    keys, on top of the default space; unknown stages, names and settings are refused, named.

    Args:
        given: the user's entries (a :class:`Space` is returned as is).
        modalities: the experiment's, the names ``experts`` may use besides ``inter`` and ``logistic``.
        use_defaults: start from :data:`DEFAULT_SPACE` (else only the given entries are tuned).
    """
    if isinstance(given, Space):
        return given
    space = default_space() if use_defaults else Space()
    known = {"experts": {*modalities, "inter", LOGISTIC}, "finetune_methods": set(STAGE2_METHODS)}
    for path, value in _flat(dict(given or {}), "").items():
        check_space_key(path)
        keys = path.split(".")
        where = f"--space.{path}"
        if keys[0] in STAGES:
            getattr(space, keys[0])[keys[1]] = parse_dimension(keys[1], value, where)
            continue
        if keys[1] not in known[keys[0]]:
            raise UserError(f"{where}: unknown name '{keys[1]}'; expected one of {sorted(known[keys[0]])}")
        getattr(space, keys[0]).setdefault(keys[1], {})[keys[2]] = parse_dimension(keys[2], value, where)
    return space


def check_space_key(path: str) -> None:
    """A :class:`UserError` naming a ``--space`` key that is not STAGE.SETTING or GROUP.NAME.SETTING."""
    keys = path.split(".")
    if (keys[0] in STAGES and len(keys) == 2) or (keys[0] in PER_NAME and len(keys) == 3):
        if keys[-1] in TUNABLE:
            return
        raise UserError(f"--space.{path}: unknown setting '{keys[-1]}'; expected one of {list(TUNABLE)}")
    raise UserError(
        f"--space.{path}: unknown key; expected pretrain.SETTING, finetune.SETTING, experts.NAME.SETTING or "
        f"finetune_methods.NAME.SETTING, with SETTING one of {list(TUNABLE)}"
    )


def _flat(value: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Dotted keys of a nested mapping; dataclasses and namespaces as mappings; ``None`` values dropped."""
    flat: dict[str, Any] = {}
    for key, item in value.items():
        path = f"{prefix}{key}"
        if hasattr(item, "as_dict"):  # a jsonargparse Namespace
            item = item.as_dict()
        elif isinstance(item, StageSpace):
            item = {f.name: getattr(item, f.name) for f in fields(StageSpace)}
        if isinstance(item, Mapping):
            flat |= _flat(item, path + ".")
        elif item is not None:
            flat[path] = item
    return flat
