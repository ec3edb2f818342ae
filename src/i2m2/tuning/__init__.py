"""``i2m2 tune``: every method of an experiment tuned with the same budget, selected on validation only.

Names load on first use, so importing this package does not import Optuna.
"""

from importlib import import_module
from typing import Any

_HOMES = {
    "tune_experiment": "i2m2.tuning.tune",
    "TuneOptions": "i2m2.tuning.tune",
    "TuneResult": "i2m2.tuning.tune",
    "Space": "i2m2.tuning.space",
    "parse_space": "i2m2.tuning.space",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'i2m2.tuning' has no attribute '{name}'")


__all__ = ["Space", "TuneOptions", "TuneResult", "parse_space", "tune_experiment"]
