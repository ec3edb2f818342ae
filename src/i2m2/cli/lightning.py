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
from pathlib import Path
from typing import Any

COMMANDS = {
    "fit": "train one method of an experiment (LightningCLI; --experiment, --method, YAML configs)",
    "validate": "evaluate a checkpoint on the validation split (LightningCLI)",
    "test": "evaluate a checkpoint on the test split (LightningCLI)",
    "predict": "predict with a checkpoint (LightningCLI)",
}
SPECIAL_CKPT_PATHS = ("best", "last", "hpc", "registry")  # Lightning's names, not files
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
    """LightningCLI over any LightningModule/DataModule, with the experiment shorthands.

    Errors are one line (no usage screen), Lightning's note about the ``args`` parameter and its seed
    messages stay out of the output, and ``--ckpt_path`` is checked before Lightning reads it.
    """
    import warnings

    from lightning.pytorch.cli import LightningCLI

    from i2m2.training.datamodule import SplitsDataModule
    from i2m2.training.fit import quiet_lightning
    from i2m2.training.lightning_module import MethodModule
    from i2m2.training.progress import progress_trainer_kwargs

    quiet_lightning()  # banners and tips, as in 'i2m2 run': an error stays one line
    warnings.filterwarnings("ignore", message=".*args.*parameter is intended to run from within Python.*")
    warnings.filterwarnings("ignore", message=".*No seed found, seed set to.*")
    warnings.filterwarnings("ignore", message=".*`tensorboardX` has been removed as a dependency.*")

    class CheckedCLI(LightningCLI):
        """Reads ``--ckpt_path`` only after checking it (Lightning reads its hyperparameters first)."""

        checkpoint: tuple[Path, dict[str, Any]] | None = None  # --ckpt_path and its state_dict, once read

        def _parse_ckpt_path(self) -> None:
            path = self.config.get(self.config.get("subcommand") or "", {}).get("ckpt_path")
            if path is not None and str(path) not in SPECIAL_CKPT_PATHS:
                self.checkpoint = (Path(path), read_checkpoint(Path(path))["state_dict"])
            super()._parse_ckpt_path()

        def instantiate_trainer(self, **kwargs: Any) -> Any:
            # The model exists now, the Trainer not yet: a checkpoint of another model fails before
            # Lightning prints anything.
            if self.checkpoint is not None:
                check_checkpoint(*self.checkpoint, self.model)
            return super().instantiate_trainer(**kwargs)

    CheckedCLI(
        MethodModule,
        SplitsDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=expand_shorthands(args),
        trainer_defaults=progress_trainer_kwargs(sys.stderr.isatty()),
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"exit_on_error": False},
    )


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's content, or one error naming the file: missing, unreadable, or not a checkpoint.

    Loaded weights-only, as Lightning reads its hyperparameters, so a file that would run code is refused.
    """
    import torch

    from i2m2.errors import DataError, UserError

    if not path.is_file():
        raise UserError(f"--ckpt_path {path}: no such file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, not a checkpoint, or holding objects weights-only loading refuses
        raise DataError(
            f"--ckpt_path {path}: not a readable checkpoint ({type(err).__name__}); expected one written by "
            "'i2m2 fit' (weights and plain values only)"
        ) from err
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise DataError(f"--ckpt_path {path}: not a Lightning checkpoint (no 'state_dict')")
    return checkpoint


def check_checkpoint(path: Path, state: dict[str, Any], model: Any) -> None:
    """Refuse, naming the file ``path``, a checkpoint whose ``state`` (its state_dict) is of another model."""
    from i2m2.errors import DataError

    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    reshaped = sorted(
        k for k in set(expected) & set(state) if getattr(state[k], "shape", None) != expected[k].shape
    )
    problems = [
        f"{len(keys)} {what}, e.g. '{keys[0]}'"
        for keys, what in (
            (missing, "missing keys"),
            (unexpected, "unexpected keys"),
            (reshaped, "other shapes"),
        )
        if keys
    ]
    if problems:
        raise DataError(
            f"--ckpt_path {path}: a checkpoint of another model ({'; '.join(problems)}); expected one of the "
            "model and options given here"
        )
