"""Dispatch ``i2m2 COMMAND``: each command parses its own options (jsonargparse); errors are one line."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from jsonargparse import ArgumentParser

from i2m2.cli.errors import deferred_interrupt, report
from i2m2.cli.lightning import COMMANDS as LIGHTNING_COMMANDS
from i2m2.cli.lightning import SUBCOMMANDS as LIGHTNING_SUBCOMMANDS
from i2m2.errors import UserError


def experiments_command(argv: list[str]) -> int:
    from i2m2.catalog import experiment_names, get_factory

    ArgumentParser(
        prog="i2m2 experiments", exit_on_error=False, description="List the experiments 'i2m2 run' knows."
    ).parse_args(argv)
    names = experiment_names()
    width = max(map(len, names))
    for name, source in names.items():
        doc = (get_factory(name).__doc__ or "").strip().splitlines()
        first = doc[0] if doc else ""
        where = "" if source == "built-in" else f"  [{source}]"
        print(f"{name:{width}s}  {first}{where}")
    return 0


def analyze_command(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="i2m2 analyze",
        exit_on_error=False,
        description="Read a finished run folder and write tables and plots into RUN_DIR/analysis (or --out).",
    )
    parser.add_argument("run_dir", type=Path, help="a folder written by 'i2m2 run' or 'i2m2 demo'")
    parser.add_argument(
        "--out",
        type=Path | None,
        default=None,
        help="where to write: a new or empty folder, or one analyze wrote before (default: RUN_DIR/analysis)",
    )
    values = parser.parse_args(argv)
    from i2m2.analysis.report import analyze_run

    for path in analyze_run(values.run_dir, values.out):
        print(path)
    return 0


def data_command(argv: list[str]) -> int:
    from i2m2.cli.data import DATASETS, check_new_folder, parse_data_options

    if not argv or argv[0] not in DATASETS:
        if argv and argv[0] in ("-h", "--help"):
            print("usage: i2m2 data DATASET [options]\n\ndatasets:")
            for name, (_, text) in DATASETS.items():
                print(f"  {name:16s} {text}")
            return 0
        raise UserError(f"i2m2 data: expected a dataset, one of {list(DATASETS)}")
    build, _ = DATASETS[argv[0]]
    options = parse_data_options(argv[0], argv[1:])
    check_new_folder(options["out"])  # before anything is written: a build never replaces files
    summary = build(**options)
    print(f"wrote {argv[0]} to {options['out']}: {summary}")
    return 0


def executor_given(argv: list[str]) -> str | None:
    """The ``--executor`` named on the command line (a config file's is read later, by the parser)."""
    for i, token in enumerate(argv):
        if token == "--executor" and i + 1 < len(argv):
            return argv[i + 1]
        if token.startswith("--executor="):
            return token.partition("=")[2]
    return None


def start_workers_if_asked(argv: list[str]) -> None:
    """When ``argv`` names ``--executor processes``, start the workers' imports now, beside this
    process's own."""
    if executor_given(argv) == "processes":
        from i2m2.orchestration.workers import warm_up_workers

        warm_up_workers()


def demo_argv(argv: list[str], cores: int) -> list[str]:
    """The demo's options: ``--executor processes`` first when there are several cores and none is named."""
    help_only = any(a in ("-h", "--help") or a.startswith("--print_config") for a in argv)
    if executor_given(argv) is None and cores > 1 and not help_only:
        return ["--executor", "processes", *argv]
    return argv


def run(argv: list[str]) -> int:
    start_workers_if_asked(argv)
    with deferred_interrupt():
        from i2m2.cli.run import run_command

    return run_command(argv)


def tune(argv: list[str]) -> int:
    start_workers_if_asked(argv)
    with deferred_interrupt():
        from i2m2.cli.tune import tune_command

    return tune_command(argv)


def demo(argv: list[str]) -> int:
    """The demo's 45 small jobs run side by side on every core (one thread each) unless ``--executor``
    says otherwise: on 2 cores that halves their time, with the same numbers as one after another."""
    from i2m2.orchestration.workers import usable_cores

    argv = demo_argv(argv, usable_cores())
    start_workers_if_asked(argv)
    with deferred_interrupt():
        from i2m2.cli.run import run_command

    return run_command(argv, prog="i2m2 demo", demo=True)


def predict(argv: list[str]) -> int:
    with deferred_interrupt():
        from i2m2.cli.predict import predict_command

    return predict_command(argv)


def export(argv: list[str]) -> int:
    with deferred_interrupt():
        from i2m2.cli.export import export_command

    return export_command(argv)


def serve(argv: list[str]) -> int:
    with deferred_interrupt():
        from i2m2.cli.serve import serve_command

    return serve_command(argv)


def lightning(command: str) -> Callable[[list[str]], int]:
    def call(argv: list[str]) -> int:
        with deferred_interrupt():
            from i2m2.cli.lightning import lightning_cli

        lightning_cli([command, *argv])
        return 0

    return call


COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "run": (run, "run a whole comparison: stage 1, stage 2, every method and seed"),
    "tune": (tune, "tune every method with the same budget on validation; write a recipe for 'i2m2 run'"),
    "demo": (demo, "the synthetic three-regime comparison (about 15 s on 2 CPU cores)"),
    "experiments": (experiments_command, "list the experiments 'i2m2 run' knows"),
    "data": (data_command, "build datasets from raw public sources, or simulated stand-ins"),
    "analyze": (analyze_command, "entropy, rescue rate, per-group and missing-modality analyses of a run"),
    "predict": (predict, "predict new examples with a trained job (any modality may be missing)"),
    "export": (export, "export a trained job as ONNX or TorchScript, preprocessing and masks inside"),
    "serve": (serve, "serve a trained job over HTTP (LitServe; batched)"),
    **{
        name: (lightning(LIGHTNING_SUBCOMMANDS.get(name, name)), text)
        for name, text in LIGHTNING_COMMANDS.items()
    },
}


def usage() -> str:
    lines = ["usage: i2m2 COMMAND [options]   (i2m2 COMMAND --help for its options)", "", "commands:"]
    width = max(map(len, COMMANDS))
    lines += [f"  {name:{width}s}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    command = args[0]
    if command not in COMMANDS:
        print(f"i2m2: error: unknown command '{command}'; expected one of {list(COMMANDS)}", file=sys.stderr)
        return 2
    handler, _ = COMMANDS[command]
    return report(f"i2m2 {command}", lambda: handler(args[1:]))


if __name__ == "__main__":
    sys.exit(main())
