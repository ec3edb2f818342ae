"""``i2m2 run EXPERIMENT`` and ``i2m2 demo``: the whole comparison, configured from flags and YAML files.

One jsonargparse parser, generated from signatures, reads everything: the run's options (the fields of
:class:`~i2m2.orchestration.options.RunOptions`), the experiment factory's keyword arguments (``--tasks``
for mimic, ``--hidden`` for features, a user's factory's), changes to the recipe (``--pretrain.lr``,
``--finetune.max_epochs``, ``--experts.inter.lr``, ``--finetune_methods.intra.lr``, spelled as in
``i2m2 fit``) and any ``lightning.pytorch.Trainer`` argument (``--trainer.devices``, ``--trainer.logger``).
``--config FILE`` reads the same keys from YAML; ``--print_config`` writes them, the recipe resolved.
Options may be spelled with dashes (``--max-epochs``) or underscores (``--max_epochs``).
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml
from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from i2m2.catalog import ExperimentFactory, ExperimentRef, build_experiment, experiment_names, get_factory
from i2m2.cli.dashes import underscored
from i2m2.cli.recipe_options import RECIPE_OPTIONS, add_recipe_arguments, recipe_with_changes
from i2m2.errors import UserError
from i2m2.experiment import Experiment
from i2m2.orchestration.options import RunOptions
from i2m2.training.trainer_options import DEFAULTS as TRAINER_DEFAULTS
from i2m2.training.trainer_options import RECIPE_OWNED

# RunOptions fields the command line does not set directly (the Trainer group and the factory's options).
NOT_OPTIONS = {"trainer", "experiment_options"}
CLI_OPTIONS = ("out", "threads")


def build_run_parser(prog: str, factory: ExperimentFactory | None, positional: bool = True) -> ArgumentParser:
    """The parser of ``i2m2 run``: RunOptions, the recipe's changes, the Trainer and the factory's options."""
    import lightning.pytorch as pl

    parser = ArgumentParser(
        prog=prog,
        exit_on_error=False,
        description="Train every method of an experiment over several seeds with the paper's two-stage "
        "recipe; write results.json/.csv/.md, a chart, checkpoints, learning curves and per-example "
        "test predictions into --out. Options take dashes or underscores.",
    )
    if positional:
        parser.add_argument(
            "experiment", help="a name from 'i2m2 experiments', FILE.py:FACTORY or MODULE:FACTORY"
        )
    parser.add_argument("--config", action=ActionConfigFile, help="YAML file with any of these options")
    parser.add_class_arguments(RunOptions, None, skip=NOT_OPTIONS)
    parser.add_argument(
        "--out", type=str | None, default=None, help="run folder (default: runs/<name>-<time>)"
    )
    parser.add_argument(
        "--threads", type=int | None, default=None, help="torch threads on CPU (default: cores - 1, >= 1)"
    )
    add_recipe_arguments(parser)
    parser.add_class_arguments(pl.Trainer, "trainer", skip=set(RECIPE_OWNED))
    parser.set_defaults({f"trainer.{k}": v for k, v in TRAINER_DEFAULTS.items()})
    if factory is not None:
        taken = {n for a in parser._actions for n in [a.dest.split(".")[0]]}
        clashes = sorted(set(factory_options(factory)) & taken)
        if clashes:
            raise UserError(f"experiment option(s) {clashes} clash with 'i2m2 run' options; rename them")
        parser.add_function_arguments(factory, None, skip={"data_dir"})
    return parser


def factory_options(factory: ExperimentFactory) -> dict[str, inspect.Parameter]:
    """The factory's keyword arguments that become options (``data_dir`` is the run's ``--data_dir``)."""
    params = inspect.signature(factory).parameters
    return {n: p for n, p in params.items() if n != "data_dir" and p.kind is not p.VAR_KEYWORD}


def canonical_argv(argv: list[str], parser: ArgumentParser, factory: ExperimentFactory | None) -> list[str]:
    """``argv`` as jsonargparse reads it: dashes to underscores, bare flags (``--resume``) to ``=true`` and
    list options given as separate words (``--methods intra i2m2``) to one list."""
    names = {a.dest for a in parser._actions} | set(RECIPE_OPTIONS) | {"print_config"}
    tops = {n.split(".")[0] for n in names}
    argv = underscored(argv, names, groups=tops)
    flags, lists = _flag_and_list_options(factory)
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        option = token.removeprefix("--")
        if token.startswith("--") and "=" not in token and option in flags:
            following = argv[i + 1].lower() if i + 1 < len(argv) else ""
            out.append(token if following in ("true", "false") else f"{token}=true")
        elif token.startswith("--") and "=" not in token and option in lists:
            values = []
            while i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                values.append(argv[i + 1])
                i += 1
            out.append(f"{token}={json.dumps(values)}")
        else:
            out.append(token)
        i += 1
    return out


def _flag_and_list_options(factory: ExperimentFactory | None) -> tuple[set[str], set[str]]:
    hints: dict[str, Any] = {f.name: f.type for f in fields(RunOptions) if f.name not in NOT_OPTIONS}
    hints = {n: get_type_hints(RunOptions).get(n, t) for n, t in hints.items()}
    if factory is not None:
        factory_hints = get_type_hints(factory)
        hints |= {n: factory_hints.get(n, Any) for n in factory_options(factory)}
    flags = {n for n, h in hints.items() if _without_none(h) is bool}
    lists = {n for n, h in hints.items() if get_origin(_without_none(h)) is list}
    return flags, lists


def _without_none(hint: Any) -> Any:
    if get_origin(hint) in (Union, UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


def experiment_ref(argv: list[str]) -> str | None:
    """The positional EXPERIMENT of ``i2m2 run``'s arguments: the first word that is no option's value."""
    flags, lists = _flag_and_list_options(None)
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("-"):
            return token
        option = token.removeprefix("--").replace("-", "_")
        if "=" in token or option in flags or token in ("-h", "--help") or option == "print_config":
            i += 1
        elif option in lists:
            return None  # its values run up to the next option: the experiment must come first
        else:
            i += 2  # the option's value
    return None


LOGGERS = ("CSVLogger", "TensorBoardLogger", "MLFlowLogger", "WandbLogger", "CometLogger", "NeptuneLogger")


def check_config_files(argv: list[str]) -> None:
    """Run configs are data only: refuse a ``class_path`` (which jsonargparse would import) before parsing,
    except one of Lightning's own loggers at ``trainer.logger``."""
    files = [a.partition("=")[2] for a in argv if a.startswith("--config=")]
    files += [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"]
    for name in files:
        try:
            content = yaml.safe_load(Path(name).read_text())
        except (OSError, yaml.YAMLError):
            continue  # the parser reports an unreadable file itself
        for where, value in _class_paths(content, ""):
            if not (where in ("trainer.logger", "trainer.logger[]") and _lightning_logger(str(value))):
                raise UserError(
                    f"--config {name}: '{where}' names class_path {value!r}; run configs are data only "
                    "(nothing is imported), except Lightning's loggers at trainer.logger: "
                    + ", ".join(LOGGERS)
                )


def _lightning_logger(class_path: str) -> bool:
    module, _, name = class_path.rpartition(".")
    return name in LOGGERS and module in ("", "lightning.pytorch.loggers")


def _class_paths(value: Any, where: str) -> list[tuple[str, Any]]:
    """``(key path, class_path)`` of every ``class_path`` in a YAML value."""
    found: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        if "class_path" in value:
            found.append((where, value["class_path"]))
        for key, item in value.items():
            found += _class_paths(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for item in value:
            found += _class_paths(item, f"{where}[]")
    return found


def default_threads() -> int:
    """One fewer torch thread than the cores this process may use (at least one).

    Leaving a core free keeps OpenMP's busy-waiting threads from collapsing when anything else runs
    on the machine (measured in docs/performance.md).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def trainer_options(values: Namespace) -> dict[str, Any]:
    """The Trainer arguments given (those that differ from ``lightning.pytorch.Trainer``'s defaults)."""
    import lightning.pytorch as pl

    defaults = {n: p.default for n, p in inspect.signature(pl.Trainer.__init__).parameters.items()}
    given = values.trainer.as_dict() if isinstance(values.trainer, Namespace) else dict(values.trainer or {})
    return {k: v for k, v in given.items() if k in defaults and v != defaults[k]}


def run_command(argv: list[str], prog: str = "i2m2 run", demo: bool = False) -> int:
    ref = "synthetic" if demo else experiment_ref(argv)
    if ref is None:
        if any(a in ("-h", "--help") for a in argv):
            build_run_parser(prog, None).print_help()
            print("\nexperiments: " + ", ".join(experiment_names()))
            return 0
        raise UserError(
            f"{prog}: expected an experiment first, one of {list(experiment_names())} or FILE.py:FACTORY"
        )
    check_config_files(argv)  # before anything named in a file is imported
    factory = get_factory(ref)
    parser = build_run_parser(prog, factory, positional=not demo)
    argv = canonical_argv(argv, parser, factory)
    print_config = any(a == "--print_config" or a.startswith("--print_config=") for a in argv)
    values = parser.parse_args(refuse_recipe_owned([a for a in argv if not a.startswith("--print_config")]))
    experiment, reference, run = experiment_and_options(values, factory, ref, NOT_OPTIONS)
    if print_config:
        print(f"# {experiment.name}: {experiment.description}")  # a comment: --config ignores it
        print(yaml.safe_dump(resolved_config(values, run, experiment, factory), sort_keys=False), end="")
        return 0
    return compare(experiment, reference, run, values, demo)


def experiment_and_options(
    values: Namespace, factory: ExperimentFactory, ref: str, skip: set[str]
) -> tuple[Experiment, ExperimentRef, RunOptions]:
    """The experiment the parsed options build (its factory's options, the recipe changes), the reference
    other processes rebuild it from, and the run's options (``RunOptions`` fields but ``skip``): what
    ``i2m2 run`` and ``i2m2 tune`` both start from."""
    options = {n: values[n] for n in factory_options(factory)}
    if "data_dir" in inspect.signature(factory).parameters:
        options["data_dir"] = values.data_dir
    if values.data_dir is not None and not Path(values.data_dir).exists():
        raise UserError(f"--data_dir {values.data_dir}: no such file or folder")
    experiment = build_experiment(factory, ref, **options)
    experiment.recipe = recipe_with_changes(experiment, *(values[k] for k in RECIPE_OPTIONS))
    run = RunOptions(
        **{f.name: values[f.name] for f in fields(RunOptions) if f.name not in skip},
        trainer=trainer_options(values),
        experiment_options={k: v for k, v in options.items() if k != "data_dir"},
    )
    return experiment, ExperimentRef.of(ref, **options).remember(experiment), run


def refuse_recipe_owned(argv: list[str]) -> list[str]:
    """``argv``, once no ``--trainer.X`` sets what the recipe owns (epochs, clipping, callbacks)."""
    for token in argv:
        owned = token.partition("=")[0].removeprefix("--trainer.")
        if token.startswith("--trainer.") and owned in RECIPE_OWNED:
            raise UserError(f"--trainer.{owned}: set by {RECIPE_OWNED[owned]}, not by a Trainer option")
    return argv


def compare(
    experiment: Experiment, reference: ExperimentRef, run: RunOptions, values: Namespace, demo: bool
) -> int:
    """Run the comparison into ``--out`` and print its headline table."""
    threads = values.threads if values.threads is not None else default_threads()
    if threads < 1:
        raise UserError(f"--threads: expected an integer >= 1, got {threads}")
    import torch

    from i2m2.orchestration.comparison import Comparison
    from i2m2.runs.folder import RunFolder

    torch.set_num_threads(threads)
    default_out = Path("runs") / f"{experiment.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    out = values.out if values.out is not None else default_out
    folder = RunFolder(out, run.resume)
    results = Comparison(experiment, folder, run, epoch_progress=not demo, experiment_ref=reference).run()
    if not results:  # a non-zero rank of a multi-process DDP run: rank 0 reports
        return 0
    sections = (Path(out) / "results.md").read_text().split("\n## ")
    print("\n## ".join(sections[:2]).rstrip() + "\n")  # the title and the monitored metric's table
    wall = results["config"]["wall_time_s"]
    print(f"wall time {wall:.0f} s; results, chart, checkpoints and predictions in {out}/")
    sys.stdout.flush()
    return 0


def resolved_config(
    values: Namespace, run: RunOptions, experiment: Experiment, factory: ExperimentFactory
) -> dict[str, Any]:
    """What ``--print_config`` writes: every option as this run resolves it, readable by ``--config``."""
    resolved: dict[str, Any] = {
        f.name: getattr(run, f.name) for f in fields(RunOptions) if f.name not in NOT_OPTIONS
    }
    resolved |= {n: values[n] for n in CLI_OPTIONS}
    resolved |= {n: values[n] for n in factory_options(factory)}
    recipe = experiment.recipe
    resolved |= {"pretrain": asdict(recipe.pretrain), "finetune": asdict(recipe.finetune)}
    for key in ("experts", "finetune_methods"):
        resolved[key] = {
            n: {k: v for k, v in asdict(c).items() if v is not None} for n, c in getattr(recipe, key).items()
        }
    resolved["trainer"] = run.trainer
    return _plain(resolved)


def _plain(value: Any) -> Any:
    """Values YAML can write: paths as strings, dataclasses and namespaces as dicts."""
    if isinstance(value, Namespace):
        value = value.as_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "__dataclass_fields__"):
        return _plain(asdict(value))
    return value
