"""AV-MNIST's audio expert under the three ``--pretrain.bn_stats`` modes: docs/avmnist.md's BatchNorm table.

    python benchmarks/avmnist_bn_stats.py --data-dir DIR [--work DIR] [--epochs 6] [--out benchmarks/results]

Runs ``i2m2 run avmnist --methods unimodal:audio --seeds 1 --max-epochs 6 --threads 1
--pretrain.bn_stats MODE`` for ``running``, ``precise`` and ``batch`` (the ``paper`` preset, seed 0, one
thread; DIR is built by ``i2m2 data avmnist --fsdd FSDD``), then reads each run's learning curve and test
accuracy. A run already finished in ``--work`` is reused (``--resume``). Writes
``OUT/avmnist_bn_stats.{json,md}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

MODES = ("running", "precise", "batch")
STEM = "all__unimodal-audio__seed0"


def run_mode(mode: str, data_dir: Path, work: Path, epochs: int) -> None:
    """One run of the audio expert with ``mode`` (nothing to do when ``work`` holds it finished)."""
    command = [str(Path(sys.executable).with_name("i2m2")), "run", "avmnist", "--data-dir", str(data_dir)]
    command += ["--methods", "unimodal:audio", "--seeds", "1", "--max-epochs", str(epochs), "--threads", "1"]
    command += ["--pretrain.bn_stats", mode, "--resume", "true", "--out", str(work / mode)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CI": "true"}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read_run(folder: Path) -> dict[str, object]:
    """Validation accuracy per epoch, the selected (best) epoch and the test accuracy of one run."""
    with (folder / "logs" / STEM / "metrics.csv").open() as f:
        val = [float(r["val/acc"]) for r in csv.DictReader(f) if r.get("val/acc")]
    record = json.loads((folder / "jobs" / f"{STEM}.json").read_text())
    best = max(range(len(val)), key=lambda i: (val[i], -i))  # the first of equal maxima
    return {
        "val_acc": val,
        "selected_epoch": best + 1,
        "test_acc": record["metrics"]["acc"],
        "job_wall_s": record["wall_time_s"],
    }


def markdown(runs: dict[str, dict[str, object]]) -> str:
    lines = [
        "| `--pretrain.bn_stats` | validation accuracy, epochs 1-N (%) | selected epoch | test accuracy (%) |"
    ]
    lines.append("|---|---|---|---|")
    best_test = max(float(r["test_acc"]) for r in runs.values())  # type: ignore[arg-type]
    for mode, r in runs.items():
        val: list[float] = r["val_acc"]  # type: ignore[assignment]
        chosen = int(r["selected_epoch"])  # type: ignore[call-overload]
        cells = [f"{100 * v:.1f}" for v in val]
        last = len(val) - 1
        if chosen - 1 != last and val[last] < val[chosen - 1]:
            cells[last] = f"**{cells[last]}**"  # the epoch the model ends on, below the one it keeps
        test = 100 * float(r["test_acc"])  # type: ignore[arg-type]
        shown = f"**{test:.1f}**" if float(r["test_acc"]) == best_test else f"{test:.1f}"  # type: ignore[arg-type]
        lines.append(f"| `{mode}` | {', '.join(cells)} | {chosen} | {shown} |")
    return "# AV-MNIST audio expert, one seed, by BatchNorm statistics mode\n\n" + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("runs/bn_stats"))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    for mode in MODES:
        run_mode(mode, args.data_dir, args.work, args.epochs)
    runs = {mode: read_run(args.work / mode) for mode in MODES}
    record = {
        "command": "i2m2 run avmnist --methods unimodal:audio --seeds 1 --max-epochs "
        f"{args.epochs} --threads 1 --pretrain.bn_stats MODE",
        "runs": runs,
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "avmnist_bn_stats.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.out / "avmnist_bn_stats.md").write_text(markdown(runs))
    print(markdown(runs))


if __name__ == "__main__":
    main()
