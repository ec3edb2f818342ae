"""Table 1 on AV-MNIST under both recipe presets (``paper`` and ``authors-code``), side by side (issue 14).

Runs ``i2m2 run avmnist --recipe PRESET --seeds 3`` for each preset in parallel (one process each), every
row of Table 1, the full epoch budget unless ``--max-epochs`` is given, then writes one table from the job
records (so a run stopped at ``--budget-s`` still reports the jobs it finished; run the same command again
with the run folders still there to continue them: each run uses ``--resume``).

    python benchmarks/avmnist_presets.py --data .device/avmnist --accelerator gpu --out "$OUT"

Writes into ``--out``: ``table1_presets.md`` (the table for docs/avmnist.md), ``table1_presets.json`` (every
seed's metrics, epochs and seconds per job, the command lines, the device), ``PRESET-results.json`` and
``PRESET-results.md`` (each run's own tables, when it finished) and ``PRESET.log``. The run folders
(checkpoints, predictions, curves) stay under ``--runs``. On the device machine use
``benchmarks/avmnist_presets.sh``, which also installs the carried wheels and unpacks the data.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PRESETS = ("paper", "authors-code")
# Table 1's rows: (label, method in the run, metric); intra and I2M2 also tested as mixtures.
ROWS = (
    ("image only", "unimodal:image", "acc"),
    ("audio only", "unimodal:audio", "acc"),
    ("intra (product, as trained)", "intra", "acc"),
    ("intra (mixture, the authors' test)", "intra", "mixture_acc"),
    ("inter LF", "inter[lf]", "acc"),
    ("inter LRTF", "inter[lrtf]", "acc"),
    ("I2M2 LF", "i2m2[lf]", "acc"),
    ("I2M2 LF (mixture)", "i2m2[lf]", "mixture_acc"),
    ("I2M2 LRTF", "i2m2[lrtf]", "acc"),
    ("I2M2 LRTF (mixture)", "i2m2[lrtf]", "mixture_acc"),
)
CLI = "import sys; from i2m2.cli import main; sys.exit(main())"


def command(args: argparse.Namespace, preset: str) -> list[str]:
    line = [sys.executable, "-c", CLI, "run", "avmnist", "--recipe", preset, "--data-dir", str(args.data)]
    line += ["--seeds", str(args.seeds), "--out", str(args.runs / preset), "--resume"]
    line += ["--trainer.accelerator", args.accelerator, "--threads", str(args.threads)]
    if args.max_epochs is not None:
        line += ["--max-epochs", str(args.max_epochs)]
    return line


def run_presets(args: argparse.Namespace) -> dict[str, int | None]:
    """Both presets at once; each is stopped (SIGTERM: the finished jobs stay) at the budget."""
    args.out.mkdir(parents=True, exist_ok=True)
    running = {}
    for preset in args.presets:
        log = (args.out / f"{preset}.log").open("a")
        running[preset] = (subprocess.Popen(command(args, preset), stdout=log, stderr=subprocess.STDOUT), log)
    deadline = time.monotonic() + args.budget_s
    codes: dict[str, int | None] = {}
    while running:
        for preset, (process, log) in list(running.items()):
            if process.poll() is not None:
                codes[preset] = process.returncode
                log.close()
                del running[preset]
        if running and time.monotonic() > deadline:
            for preset, (process, log) in running.items():
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                codes[preset] = None  # stopped at the budget
                log.close()
            running = {}
        time.sleep(2)
    return codes


def job_records(run_dir: Path) -> dict[tuple[str, int], dict[str, Any]]:
    records = {}
    for path in sorted((run_dir / "jobs").glob("*.json")):
        record = json.loads(path.read_text())
        records[(record["method"], int(record["seed"]))] = record
    return records


def cell(values: list[float]) -> str:
    if not values:
        return "-"
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    seeds = "" if len(values) == 3 else f" ({len(values)} seed{'s' if len(values) > 1 else ''})"
    return f"{100 * mean:.1f} ± {100 * std:.1f}{seeds}"


def device_name() -> str:
    try:
        import torch

        return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    except Exception as err:  # the table is still worth writing
        return f"unknown ({type(err).__name__})"


def table(args: argparse.Namespace, codes: dict[str, int | None], seconds: float) -> dict[str, Any]:
    records = {p: job_records(args.runs / p) for p in args.presets}
    summary: dict[str, Any] = {
        "presets": {},
        "rows": [],
        "seconds": round(seconds, 1),
        "device": device_name(),
    }
    for preset in args.presets:
        run = args.runs / preset
        summary["presets"][preset] = {
            "command": " ".join(command(args, preset)[3:]),
            "exit_code": codes.get(preset),
            "finished": (run / "results.json").exists() and codes.get(preset) == 0,
            "jobs": len(records[preset]),
        }
    lines = [
        "| row | " + " | ".join(f"`{p}`" for p in args.presets) + " |",
        "|---|" + "---|" * len(args.presets),
    ]
    for label, method, metric in ROWS:
        values = {
            p: [
                r["metrics"][metric]
                for (m, _), r in sorted(records[p].items())
                if m == method and metric in r["metrics"]
            ]
            for p in args.presets
        }
        summary["rows"].append({"row": label, "method": method, "metric": metric, "per_seed": values})
        lines.append(f"| {label} | " + " | ".join(cell(values[p]) for p in args.presets) + " |")
    cost = ["| job | " + " | ".join(f"`{p}` epochs (per seed)" for p in args.presets) + " |"]
    cost.append("|---|" + "---|" * len(args.presets))
    for method in dict.fromkeys(m for _, m, _ in ROWS):
        cells = []
        for p in args.presets:
            jobs = [r for (m, _), r in sorted(records[p].items()) if m == method]
            cells.append(", ".join(str(r.get("epochs", "?")) for r in jobs) or "-")
        cost.append(f"| {method} | " + " | ".join(cells) + " |")
    header = [
        "# AV-MNIST Table 1 under both recipe presets",
        "",
        f"Test accuracy (%), mean ± std over seeds 0-{args.seeds - 1} (population std); data: {args.data}; "
        f"device: {summary['device']}; wall time {seconds:.0f} s.",
        "",
    ]
    summary["markdown"] = (
        "\n".join([*header, *lines, "", "Epochs run per job (early stopping):", "", *cost]) + "\n"
    )
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(".device/avmnist"), help="the AV-MNIST folder")
    parser.add_argument(
        "--out", type=Path, default=Path(os.environ.get("OUT", "benchmarks/results/avmnist_presets"))
    )
    parser.add_argument(
        "--runs", type=Path, default=Path(".device/runs"), help="the run folders (kept for --resume)"
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=None, help="default: each preset's full budget")
    parser.add_argument("--accelerator", default="gpu")
    parser.add_argument("--threads", type=int, default=4, help="torch CPU threads per run")
    parser.add_argument("--budget-s", type=float, default=540, help="stop the runs after this many seconds")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--table-only", action="store_true", help="only write the table from --runs")
    args = parser.parse_args()
    if not (args.data / "train_labels.npy").exists():
        print(f"{args.data}: no AV-MNIST files (train_labels.npy)", file=sys.stderr)
        return 2
    started = time.monotonic()
    codes = {p: 0 for p in args.presets} if args.table_only else run_presets(args)
    summary = table(args, codes, time.monotonic() - started)
    summary["args"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    args.out.mkdir(parents=True, exist_ok=True)  # --table-only does not run (or create) anything else
    (args.out / "table1_presets.md").write_text(summary["markdown"])
    (args.out / "table1_presets.json").write_text(json.dumps(summary, indent=2) + "\n")
    for preset in args.presets:
        for name in ("results.json", "results.md"):
            if (args.runs / preset / name).exists():
                shutil.copy(args.runs / preset / name, args.out / f"{preset}-{name}")
    print(summary["markdown"])
    print(json.dumps({p: summary["presets"][p] for p in args.presets}, indent=2))
    return 0 if all(summary["presets"][p]["finished"] for p in args.presets) else 1


if __name__ == "__main__":
    sys.exit(main())
