"""``i2m2 fit/validate/test/predict``: Lightning's own CLI over one method of any experiment.

``--experiment REF --method M --group G --data-dir DIR`` is shorthand for choosing
:class:`~i2m2.training.experiment_module.ExperimentMethodModule` and
:class:`~i2m2.training.datamodule.ExperimentDataModule` with those arguments; a YAML config may name
any LightningModule/DataModule by ``class_path`` instead (see ``src/i2m2/configs/``). A config names
classes and functions to import, so a config file deserves the trust one gives code.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

COMMANDS = {
    "fit": "train one method of an experiment (LightningCLI; --experiment, --method, YAML configs)",
    "validate": "evaluate a checkpoint on the validation split (LightningCLI)",
    "test": "evaluate a checkpoint on the test split (LightningCLI)",
    "predict": "predict with a checkpoint (LightningCLI)",
}
MODEL = "i2m2.training.experiment_module.ExperimentMethodModule"
DATA = "i2m2.training.datamodule.ExperimentDataModule"
SHORTHANDS = {
    "--experiment": ("model", "data"),
    "--method": ("model",),
    "--group": ("model", "data"),
    "--fusion": ("model",),
    "--data-dir": ("model", "data"),
    "--seed": ("data",),
}


def expand_shorthands(args: Sequence[str]) -> list[str]:
    """Turn ``--experiment X`` (and friends) into the ``--model``/``--data`` arguments LightningCLI reads."""
    out: list[str] = []
    chosen: dict[str, str] = {}
    items = list(args)
    i = 0
    while i < len(items):
        token = items[i]
        name, eq, value = token.partition("=")
        if name in SHORTHANDS:
            if not eq:
                if i + 1 >= len(items):
                    raise ValueError(f"{name}: expected a value")
                value = items[i + 1]
                i += 1
            chosen[name] = value
        else:
            out.append(token)
        i += 1
    if not chosen:
        return out
    if "--experiment" not in chosen:
        raise ValueError(f"{sorted(chosen)} need --experiment")
    extra = [f"--model={MODEL}", f"--data={DATA}"]
    for name, value in chosen.items():
        key = name.removeprefix("--").replace("-", "_")
        extra += [f"--{target}.{key}={value}" for target in SHORTHANDS[name]]
    return out[:1] + extra + out[1:]  # after the subcommand (fit, test, ...)


def lightning_cli(args: Sequence[str]) -> None:
    """LightningCLI over any LightningModule/DataModule, with the experiment shorthands."""
    import warnings

    from lightning.pytorch.cli import LightningCLI

    from i2m2.training.datamodule import SplitsDataModule
    from i2m2.training.lightning_module import MethodModule
    from i2m2.training.progress import progress_trainer_kwargs

    warnings.filterwarnings("ignore", message=".*args.*parameter is intended to run from within Python.*")
    LightningCLI(
        MethodModule,
        SplitsDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=expand_shorthands(args),
        trainer_defaults=progress_trainer_kwargs(sys.stderr.isatty()),
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"exit_on_error": False},
    )
