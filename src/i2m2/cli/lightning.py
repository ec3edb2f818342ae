"""``i2m2 fit/validate/test/predict-batches``: Lightning's own CLI over one method of any experiment.

``--experiment REF --method M --group G --data_dir DIR`` is shorthand for choosing
:class:`~i2m2.cli.experiment_modules.ExperimentMethodModule` and
:class:`~i2m2.cli.experiment_modules.ExperimentDataModule` with those arguments. With it, the recipe's
settings are spelled as in ``i2m2 run`` (``--pretrain.lr``, ``--finetune.batch_size``,
``--experts.audio.lr``, ``--finetune_methods.intra.lr``) and the method's resolved settings are shown by
``--print_config``: its epochs (``trainer.max_epochs``), batch size (``data.batch_size``) and the recipe
(``model.pretrain`` ...). A YAML config may name any LightningModule/DataModule by ``class_path`` instead
(see ``src/i2m2/configs/``); a config names classes to import, so it deserves the trust one gives code.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from i2m2.cli.dashes import underscored
from i2m2.cli.recipe_options import RECIPE_OPTIONS
from i2m2.errors import UserError

COMMANDS = {
    "fit": "train one method of an experiment (LightningCLI; --experiment, --method, YAML configs)",
    "validate": "evaluate a checkpoint on the validation split (LightningCLI)",
    "test": "evaluate a checkpoint on the test split (LightningCLI)",
    "predict-batches": "LightningCLI's predict over a data module's batches ('i2m2 predict': new files)",
}
# The i2m2 command -> LightningCLI's subcommand ('i2m2 predict' predicts new files with a run's job).
SUBCOMMANDS = {"predict-batches": "predict"}
SPECIAL_CKPT_PATHS = ("best", "last", "hpc", "registry")  # Lightning's names, not files
MODEL = "i2m2.cli.experiment_modules.ExperimentMethodModule"
DATA = "i2m2.cli.experiment_modules.ExperimentDataModule"
SHORTHANDS = {
    "--experiment": ("model", "data"),
    "--method": ("model",),
    "--group": ("model", "data"),
    "--fusion": ("model",),
    "--data_dir": ("model", "data"),
    "--seed": ("data",),
    "--options": ("model", "data"),  # the factory's keyword arguments, as JSON
}


def expand_shorthands(args: Sequence[str]) -> list[str]:
    """Turn ``--experiment X`` (and friends) into the ``--model``/``--data`` arguments LightningCLI reads,
    with the method's recipe written out (so ``--print_config`` shows it and a saved config repeats it)."""
    out: list[str] = []
    chosen: dict[str, str] = {}
    recipe: list[str] = []  # --pretrain.lr 0.1 and friends, as i2m2 run spells them
    items = underscored(list(args), [n.removeprefix("--") for n in SHORTHANDS], groups=RECIPE_OPTIONS)
    items = [*items[:1], *from_run_checkpoint(items[1:]), *items[1:]]
    i = 0
    while i < len(items):
        token = items[i]
        name, eq, value = token.partition("=")
        head = name.removeprefix("--").split(".")[0]
        if name in SHORTHANDS or head in RECIPE_OPTIONS:
            if not eq:
                if i + 1 >= len(items):
                    raise UserError(f"{name}: expected a value")
                value = items[i + 1]
                i += 1
            if name in SHORTHANDS:
                chosen[name] = value
            else:
                recipe += [name, value]
        else:
            out.append(token)
        i += 1
    if not chosen and not recipe:
        return out
    if "--experiment" not in chosen:
        raise UserError(
            f"{sorted(chosen) or sorted({r.split('.')[0] for r in recipe[::2]})} need --experiment"
        )
    extra = [f"--model={MODEL}", f"--data={DATA}"]
    for name, value in chosen.items():
        key = name.removeprefix("--")
        extra += [f"--{target}.{key}={value}" for target in SHORTHANDS[name]]
    extra += recipe_arguments(chosen, recipe)
    return out[:1] + extra + out[1:]  # after the subcommand (fit, test, ...)


def from_run_checkpoint(args: list[str]) -> list[str]:
    """``--experiment/--method/--group/...`` of the job that wrote ``--ckpt_path`` when none are given, so
    ``i2m2 test --ckpt_path RUN/checkpoints/X.ckpt`` evaluates a checkpoint of ``i2m2 run`` as it is."""
    named = {a.partition("=")[0] for a in args}
    given = {"--experiment", "--model", "-c", "--config"} & named
    path = next(
        (
            a.partition("=")[2] or (args[i + 1] if i + 1 < len(args) else "")
            for i, a in enumerate(args)
            if a.partition("=")[0] == "--ckpt_path"
        ),
        None,
    )
    if given or path is None or path in SPECIAL_CKPT_PATHS:
        return []
    job = read_checkpoint(Path(path)).get("hyper_parameters", {}).get("job") or {}
    reference = job.get("experiment_ref") if isinstance(job, dict) else None
    if not isinstance(reference, dict):
        raise UserError(
            f"--ckpt_path {path}: says nothing of the experiment that wrote it; pass --experiment NAME "
            "--method M --group G (or --model/--config) to say what it is a checkpoint of"
        )
    out = [f"--experiment={reference['ref']}", f"--method={job['method']}", f"--group={job['group']}"]
    out += [f"--seed={job['seed']}", f"--options={json.dumps(reference.get('options') or {})}"]
    out += [f"--fusion={job['fusion']}"] if job.get("fusion") else []
    out += ["--model.all_subsets=true"] if job.get("all_subsets") else []
    return out + ([f"--data_dir={job['data_dir']}"] if job.get("data_dir") else [])


def recipe_arguments(chosen: dict[str, str], recipe: list[str]) -> list[str]:
    """The method's whole recipe as model arguments, the user's changes applied last, and the epochs and
    batch size it trains with as Trainer and data arguments (a later ``--trainer.max_epochs`` still wins)."""
    from dataclasses import asdict

    from jsonargparse import ArgumentParser

    from i2m2.cli.experiment_modules import load_experiment, method_stage
    from i2m2.cli.recipe_options import add_recipe_arguments

    data_dir = chosen.get("--data_dir")
    options = json.loads(chosen.get("--options") or "{}")
    experiment = load_experiment(chosen["--experiment"], Path(data_dir) if data_dir else None, options)
    parser = ArgumentParser(exit_on_error=False)
    add_recipe_arguments(parser)
    changes = parser.parse_args(recipe)
    method = chosen.get("--method", "i2m2")
    stage = method_stage(experiment, method, *(changes[k] for k in RECIPE_OPTIONS))
    base = experiment.recipe
    written = {
        "pretrain": asdict(base.pretrain),
        "finetune": asdict(base.finetune),
        "experts": {n: _set(asdict(c)) for n, c in base.experts.items()},
        "finetune_methods": {n: _set(asdict(c)) for n, c in base.finetune_methods.items()},
    }
    out = [f"--model.{k}={json.dumps(v)}" for k, v in written.items()]
    pairs = zip(recipe[::2], recipe[1::2], strict=True)
    out += [f"--model.{name.removeprefix('--')}={value}" for name, value in pairs]
    return [*out, f"--trainer.max_epochs={stage.max_epochs}", f"--data.batch_size={stage.batch_size}"]


def _set(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


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
    from i2m2.training.trainer_options import DEFAULTS as TRAINER_DEFAULTS

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
                content = read_checkpoint(Path(path))
                self.checkpoint = (Path(path), content["state_dict"])
                if "experiment_ref" in (content.get("hyper_parameters", {}).get("job") or {}):
                    return  # a checkpoint of 'i2m2 run': the job's options were given (from_run_checkpoint)
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
        trainer_defaults=TRAINER_DEFAULTS | progress_trainer_kwargs(sys.stderr.isatty()),
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
