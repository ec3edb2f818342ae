"""``i2m2 run EXPERIMENT`` and ``i2m2 demo``: the whole comparison, configured from flags and YAML files.

One jsonargparse parser reads everything: the run's options, the experiment factory's own keyword
arguments (``--tasks`` for mimic, ``--hidden`` for features, a user's factory's), changes to the recipe
(``--pretrain.lr``, ``--finetune.max_epochs``, ``--experts.inter.lr``, ``--finetune-methods.intra.lr``)
and the Trainer's scale-out settings
(``--trainer.devices``). ``--config FILE`` reads the same keys from YAML; ``--print-config`` writes them.
"""

from __future__ import annotations

import inspect
import os
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml
from jsonargparse import ActionConfigFile, ActionYesNo, ArgumentParser

from i2m2.catalog import ExperimentFactory, build_experiment, experiment_names, get_factory
from i2m2.errors import UserError
from i2m2.experiment import FINETUNED_METHODS, Experiment, Recipe, StageChanges
from i2m2.training.comparison import Comparison, RunOptions
from i2m2.training.scale import ScaleConfig

# Run options with their types and help; their names on the command line use dashes.
RUN_OPTIONS: dict[str, tuple[Any, Any, str]] = {
    "seeds": (int, 3, "number of seeds; seed k is one full comparison"),
    "first_seed": (int, 0, "the first seed: runs seeds first-seed .. first-seed + seeds - 1"),
    "out": (str | None, None, "run folder (default: runs/<experiment>-<time>)"),  # str: '' is refused
    "methods": (
        str,
        None,
        "rows to produce, e.g. unimodal:image intra inter i2m2 (default: the experiment's, usually all)",
    ),
    "fusion": (str, None, "inter experts to compare, e.g. late lrtf (default: the experiment's)"),
    "data_dir": (Path | None, None, "the dataset folder, for experiments that read files"),
    "max_epochs": (int | None, None, "override every stage's epochs (quick looks, smoke tests)"),
    "num_workers": (int, 0, "DataLoader worker processes per job (data read lazily from disk)"),
    "threads": (int | None, None, "torch threads on CPU (default: one fewer than the cores, at least 1)"),
}
FLAGS = {
    "from_scratch": "train intra and I2M2 jointly from random init (the paper's Table 5 ablation)",
    "prior_correction": "exact Eq. (3): remove the K-1 extra copies of p(y) from products of K experts",
    "all_subsets": "one inter expert per subset of two or more modalities (paper Section 5; M >= 3)",
    "resume": "continue the run in --out, skipping finished jobs",
}
LIST_OPTIONS = ("methods", "fusion")
RECIPE_OPTIONS = ("trainer", "pretrain", "finetune", "experts", "finetune_methods")


def flag() -> Any:
    """A boolean option given as a bare flag (``--resume``)."""
    return ActionYesNo(no_prefix=None)  # type: ignore[arg-type]


def factory_options(factory: ExperimentFactory) -> dict[str, inspect.Parameter]:
    """The factory's keyword arguments that become options (``data_dir`` is the run's ``--data-dir``)."""
    params = inspect.signature(factory).parameters
    return {n: p for n, p in params.items() if n != "data_dir" and p.kind is not p.VAR_KEYWORD}


def build_run_parser(prog: str, factory: ExperimentFactory | None, positional: bool = True) -> ArgumentParser:
    parser = ArgumentParser(
        prog=prog,
        exit_on_error=False,
        description="Train every method of an experiment over several seeds with the paper's two-stage "
        "recipe; write results.json/.csv/.md, a chart, checkpoints, learning curves and per-example "
        "test predictions into --out.",
    )
    if positional:
        parser.add_argument(
            "experiment", help="a name from 'i2m2 experiments', FILE.py:FACTORY or MODULE:FACTORY"
        )
    parser.add_argument("--config", action=ActionConfigFile, help="YAML file with any of these options")
    parser.add_argument(
        "--print-config",
        action=flag(),
        default=False,
        help="print the resolved options as YAML and exit",
    )
    for name, (kind, default, text) in RUN_OPTIONS.items():
        extra: dict[str, Any] = {"nargs": "+"} if name in LIST_OPTIONS else {}
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=default, help=text, **extra)
    for name, text in FLAGS.items():
        parser.add_argument("--" + name.replace("_", "-"), action=flag(), default=False, help=text)
    parser.add_argument(
        "--trainer", type=ScaleConfig, default=ScaleConfig(), help="Lightning Trainer scale-out"
    )
    parser.add_argument(
        "--pretrain", type=StageChanges, default=StageChanges(), help="stage-1 changes, every expert"
    )
    parser.add_argument("--finetune", type=StageChanges, default=StageChanges(), help="stage-2 changes")
    parser.add_argument(
        "--experts",
        type=dict[str, StageChanges],
        default={},
        help="stage-1 changes per expert (a modality or inter)",
    )
    parser.add_argument(
        "--finetune-methods",
        type=dict[str, StageChanges],
        default={},
        help="stage-2 changes per method (intra or i2m2), applied after --finetune",
    )
    if factory is not None:
        hints = get_type_hints(factory)
        for name, param in factory_options(factory).items():
            if name in RUN_OPTIONS or name in FLAGS or name in RECIPE_OPTIONS:
                raise UserError(f"experiment option '{name}' clashes with an 'i2m2 run' option; rename it")
            default = None if param.default is inspect.Parameter.empty else param.default
            kind, extra = option_type(hints.get(name, Any))
            parser.add_argument(
                "--" + name.replace("_", "-"),
                type=kind,
                default=default,
                **extra,
                required=param.default is inspect.Parameter.empty,
                help=f"option of this experiment (default: {default})",
            )
    return parser


def option_type(hint: Any) -> tuple[Any, dict[str, Any]]:
    """A list option takes its items as separate words (``--tasks a b``), like the run's ``--methods``."""
    args = (
        [a for a in get_args(hint) if a is not type(None)]
        if get_origin(hint) in (Union, UnionType)
        else [hint]
    )
    if len(args) == 1 and get_origin(args[0]) is list and len(get_args(args[0])) == 1:
        return get_args(args[0])[0], {"nargs": "+"}
    return hint, {}


def experiment_ref(argv: list[str]) -> str | None:
    """The positional EXPERIMENT of ``i2m2 run``'s arguments, if any."""
    for token in argv:
        if not token.startswith("-"):
            return token
        if token in ("--config",):
            return None  # a value follows; the experiment must come first
    return None


def resolved_recipe(experiment: Experiment, values: Any) -> Recipe:
    """The experiment's recipe with the user's changes applied; expert names are checked."""
    base = experiment.recipe
    return Recipe(
        pretrain=values.pretrain.applied_to(base.pretrain),
        finetune=values.finetune.applied_to(base.finetune),
        experts=merged_changes(
            base.experts, values.experts, {*experiment.modalities, "inter"}, "--experts: unknown expert(s)"
        ),
        finetune_methods=merged_changes(
            base.finetune_methods,
            values.finetune_methods,
            set(FINETUNED_METHODS),
            "--finetune-methods: unknown method(s)",
        ),
    )


def merged_changes(
    base: dict[str, StageChanges], given: dict[str, StageChanges] | None, known: set[str], unknown_text: str
) -> dict[str, StageChanges]:
    """The recipe's per-name changes with the user's on top (a field the user sets wins)."""
    changes = dict(given or {})
    unknown = sorted(set(changes) - known)
    if unknown:
        raise UserError(f"{unknown_text} {unknown}; expected some of {sorted(known)}")
    merged = dict(base)
    for name, change in changes.items():
        old = merged.get(name, StageChanges())
        merged[name] = StageChanges(
            **{
                f.name: v if (v := getattr(change, f.name)) is not None else getattr(old, f.name)
                for f in fields(StageChanges)
            }
        )
    return merged


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


def run_command(argv: list[str], prog: str = "i2m2 run", demo: bool = False) -> int:
    ref = "synthetic" if demo else experiment_ref(argv)
    if ref is None:
        parser = build_run_parser(prog, None)
        if any(a in ("-h", "--help") for a in argv):
            parser.print_help()
            print("\nexperiments: " + ", ".join(experiment_names()))
            return 0
        raise UserError(
            f"{prog}: expected an experiment first, one of {list(experiment_names())} or FILE.py:FACTORY"
        )
    factory = get_factory(ref)
    parser = build_run_parser(prog, factory, positional=not demo)
    values = parser.instantiate(parser.parse_args(argv))
    options = {n: values[n] for n in factory_options(factory)}
    if "data_dir" in inspect.signature(factory).parameters:
        options["data_dir"] = values.data_dir
    for name in ("data_dir",):
        path = values[name]
        if path is not None and not Path(path).exists():
            raise UserError(f"--data-dir {path}: no such file or folder")
    experiment = build_experiment(factory, ref, **options)
    recipe = resolved_recipe(experiment, values)
    scale = values.trainer
    if values.print_config:
        skip = ("config", "print_config", "experiment", "__path__")
        resolved = {k: v for k, v in vars(values).items() if k not in skip and not k.startswith("__")}
        resolved |= {"pretrain": asdict(recipe.pretrain), "finetune": asdict(recipe.finetune)}
        for key in ("experts", "finetune_methods"):
            resolved[key] = {
                n: {k: v for k, v in asdict(c).items() if v is not None}
                for n, c in getattr(recipe, key).items()
            }
        print(f"# {experiment.name}: {experiment.description}")  # a comment: --config ignores it
        print(yaml.safe_dump(_plain(resolved), sort_keys=False), end="")
        return 0
    experiment.recipe = recipe
    threads = values.threads if values.threads is not None else default_threads()
    if threads < 1:
        raise UserError(f"--threads: expected an integer >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)
    run = RunOptions(
        seeds=values.seeds,
        first_seed=values.first_seed,
        methods=values.methods,
        fusion=values.fusion,
        data_dir=values.data_dir,
        max_epochs=values.max_epochs,
        from_scratch=values.from_scratch,
        prior_correction=values.prior_correction,
        all_subsets=values.all_subsets,
        resume=values.resume,
        num_workers=values.num_workers,
        scale=scale,
        experiment_options={k: v for k, v in options.items() if k != "data_dir"},
    )
    from i2m2.runs.folder import RunFolder

    default_out = Path("runs") / f"{experiment.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    out = values.out if values.out is not None else default_out
    results = Comparison(experiment, RunFolder(out, run.resume), run, epoch_progress=not demo).run()
    if not results:  # a non-zero rank of a multi-process DDP run: rank 0 reports
        return 0
    sections = (Path(out) / "results.md").read_text().split("\n## ")
    print("\n## ".join(sections[:2]).rstrip() + "\n")  # the title and the monitored metric's table
    wall = results["config"]["wall_time_s"]
    print(f"wall time {wall:.0f} s; results, chart, checkpoints and predictions in {out}/")
    sys.stdout.flush()
    return 0


def _plain(value: Any) -> Any:
    """Values YAML can write: paths as strings, dataclasses as dicts."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "__dataclass_fields__"):
        return _plain(asdict(value))
    return value
