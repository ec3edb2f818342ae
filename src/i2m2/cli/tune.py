"""``i2m2 tune EXPERIMENT``: every method tuned with the same budget, on validation only.

The parser is ``i2m2 run``'s, generated the same way (the run's options from
:class:`~i2m2.orchestration.options.RunOptions`, the factory's keyword arguments, the recipe's changes, the
Trainer's arguments), plus the tune's own (:class:`~i2m2.tuning.tune.TuneOptions`) and the search space
(``--space.pretrain.lr 1e-5:1e-1:log``, ``--space.experts.audio.weight_decay 0,1e-4,1e-2``).
"""

from __future__ import annotations

from pathlib import Path

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from i2m2.catalog import ExperimentFactory, experiment_names, get_factory
from i2m2.cli.recipe_options import add_recipe_arguments
from i2m2.cli.run import (
    NOT_OPTIONS,
    canonical_argv,
    check_config_files,
    default_threads,
    experiment_and_options,
    experiment_ref,
    factory_options,
    refuse_recipe_owned,
)
from i2m2.errors import UserError
from i2m2.orchestration.options import RunOptions
from i2m2.training.trainer_options import DEFAULTS as TRAINER_DEFAULTS
from i2m2.training.trainer_options import RECIPE_OWNED
from i2m2.tuning.space import PER_NAME, STAGES, StageSpace, check_space_key, parse_space
from i2m2.tuning.tune import TuneOptions, Tuner, TuneResult

# RunOptions fields a tune does not take: it always continues its study, and tunes the two-stage recipe.
NOT_TUNE_OPTIONS = NOT_OPTIONS | {"resume", "from_scratch"}
PROG = "i2m2 tune"


def build_tune_parser(factory: ExperimentFactory | None) -> ArgumentParser:
    """The parser of ``i2m2 tune``: the run's options, the tune's, the space, the recipe, the Trainer."""
    import lightning.pytorch as pl

    parser = ArgumentParser(
        prog=PROG,
        exit_on_error=False,
        description="Tune each stage-1 expert on its own validation metric, then the stage-2 products from "
        "the tuned experts, each method with the same number of trials; write DIR/tuned.yaml (read by "
        "'i2m2 run EXPERIMENT --config DIR/tuned.yaml'), trials.csv, tuning.png and the study. Run it again "
        "to continue. The test split is never read. Options take dashes or underscores.",
    )
    parser.add_argument(
        "experiment", help="a name from 'i2m2 experiments', FILE.py:FACTORY or MODULE:FACTORY"
    )
    parser.add_argument("--config", action=ActionConfigFile, help="YAML file with any of these options")
    parser.add_class_arguments(RunOptions, None, skip=NOT_TUNE_OPTIONS)
    parser.set_defaults(seeds=1)
    parser.add_class_arguments(TuneOptions, None)
    parser.add_argument("--out", type=str, required=True, help="the tune's folder (its study, results)")
    parser.add_argument(
        "--threads", type=int | None, default=None, help="torch threads on CPU (default: cores - 1, >= 1)"
    )
    for stage in STAGES:
        parser.add_argument(
            f"--space.{stage}", type=StageSpace, default=StageSpace(), help=f"the space of every {stage} job"
        )
    parser.add_argument(
        "--space.experts", type=dict[str, StageSpace], default={}, help="per expert (a modality or inter)"
    )
    parser.add_argument(
        "--space.finetune_methods", type=dict[str, StageSpace], default={}, help="per product (intra, i2m2)"
    )
    add_recipe_arguments(parser)
    parser.add_class_arguments(pl.Trainer, "trainer", skip=set(RECIPE_OWNED))
    parser.set_defaults({f"trainer.{k}": v for k, v in TRAINER_DEFAULTS.items()})
    if factory is not None:
        taken = {a.dest.split(".")[0] for a in parser._actions}
        clashes = sorted(set(factory_options(factory)) & taken)
        if clashes:
            raise UserError(f"experiment option(s) {clashes} clash with 'i2m2 tune' options; rename them")
        parser.add_function_arguments(factory, None, skip={"data_dir"})
    return parser


def space_options(argv: list[str]) -> list[str]:
    """``argv`` with each ``--space.KEY`` checked (a known stage, name and setting; one line naming it
    otherwise) and joined to its value, so a value starting with a dash (``-1e-3:1e-1``) reaches the
    space's own checks instead of reading as an option."""
    out: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        index += 1
        if token.startswith("--space."):
            keys = token.partition("=")[0].removeprefix("--space.").split(".")
            whole = (len(keys) == 1 and keys[0] in (*STAGES, *PER_NAME)) or (
                len(keys) == 2 and keys[0] in PER_NAME
            )
            if not whole:  # a mapping of settings is checked once parsed
                check_space_key(".".join(keys))
            if "=" not in token and index < len(argv):
                token, index = f"{token}={argv[index]}", index + 1
        out.append(token)
    return out


def tune_command(argv: list[str]) -> int:
    ref = experiment_ref(argv)
    if ref is None:
        if any(a in ("-h", "--help") for a in argv):
            build_tune_parser(None).print_help()
            print("\nexperiments: " + ", ".join(experiment_names()))
            return 0
        raise UserError(
            f"{PROG}: expected an experiment first, one of {list(experiment_names())} or FILE.py:FACTORY"
        )
    check_config_files(argv)
    factory = get_factory(ref)
    parser = build_tune_parser(factory)
    argv = canonical_argv(argv, parser, factory)
    argv = space_options(argv)
    values = parser.parse_args(refuse_recipe_owned(argv))
    tune = TuneOptions(values.trials, values.sampler, values.storage, values.pruner, values.sampler_seed)
    experiment, reference, run = experiment_and_options(values, factory, ref, NOT_TUNE_OPTIONS)
    given = values.space.as_dict() if isinstance(values.space, Namespace) else dict(values.space or {})
    space = parse_space(given, experiment.modalities)
    threads = values.threads if values.threads is not None else default_threads()
    if threads < 1:
        raise UserError(f"--threads: expected an integer >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)
    result = Tuner(experiment, Path(values.out), space, tune, run, reference)()
    print(summary(result, ref, values.out))
    return 0


def summary(result: TuneResult, ref: str, out: str) -> str:
    """The winners as a table, and where everything is."""
    names = sorted({n for b in result.best.values() for n in b.params})
    width = max(len(m) for m in result.best) if result.best else 6
    lines = [
        f"{'method':{width}s}  "
        + "  ".join(f"{n:>12s}" for n in names)
        + f"  {'val ' + result.monitor:>10s}  trials"
    ]
    for method, best in result.best.items():
        cells = "  ".join(f"{best.params[n]:>12g}" if n in best.params else f"{'':>12s}" for n in names)
        lines.append(f"{method:{width}s}  {cells}  {best.value:>10.4f}  {best.finished}")
    lines.append(f"wrote {result.tuned}, {result.trials} and the chart in {out}/")
    lines.append(f"run the tuned recipe: i2m2 run {ref} --config {result.tuned}")
    return "\n".join(lines)
