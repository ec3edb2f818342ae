"""Jobs side by side: ``i2m2 demo`` and the synthetic sweep, one worker against two (one thread each).

    python benchmarks/executors.py [--seeds 1] [--out benchmarks/results]

Each workload runs three times in one go: ``--executor local --threads 1`` (one job at a time, today's
default on a 2-core machine), ``--executor processes --workers 1`` and ``--workers 2``. Results: wall times,
the speed-up of two workers over one, and whether every executor wrote the same metrics. Written to
``OUT/executors.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKLOADS = {
    "demo (synthetic, 3 regimes)": ["demo"],
    "synthetic sweep": ["run", "synthetic-sweep"],
}
EXECUTORS = {
    "local, 1 thread": ["--executor", "local", "--threads", "1"],
    "processes, 1 worker": ["--executor", "processes", "--workers", "1"],
    "processes, 2 workers": ["--executor", "processes", "--workers", "2"],
}


def run(argv: list[str], out: Path) -> tuple[float, list, int]:
    script = str(Path(sys.executable).with_name("i2m2"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CI": "true"}
    started = time.perf_counter()
    done = subprocess.run([script, *argv, "--out", str(out)], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    results = json.loads((out / "results.json").read_text())
    rows = [(r["method"], r["group"], r["metrics"]) for r in results["rows"]]
    return wall, rows, len(list((out / "jobs").glob("*.json")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    measured: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for workload, command in WORKLOADS.items():
            entry: dict = {"runs": {}}
            reference = None
            for executor, flags in EXECUTORS.items():
                folder = Path(scratch) / f"{len(measured)}-{len(entry['runs'])}"
                wall, rows, jobs = run([*command, "--seeds", str(args.seeds), *flags], folder)
                reference = rows if reference is None else reference
                entry["runs"][executor] = {
                    "wall_s": round(wall, 1),
                    "jobs": jobs,
                    "same_metrics": rows == reference,
                }
                print(f"{workload}: {executor}: {wall:.1f} s, {jobs} jobs", flush=True)
            runs = entry["runs"]
            entry["speedup_2_over_1_worker"] = round(
                runs["processes, 1 worker"]["wall_s"] / runs["processes, 2 workers"]["wall_s"], 2
            )
            entry["speedup_2_workers_over_local"] = round(
                runs["local, 1 thread"]["wall_s"] / runs["processes, 2 workers"]["wall_s"], 2
            )
            measured[workload] = entry
    machine = {"cores": os.cpu_count(), "python": platform.python_version(), "seeds": args.seeds}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "executors.json").write_text(
        json.dumps({"machine": machine, "workloads": measured}, indent=2)
    )
    lines = [
        "# Executors: jobs side by side",
        "",
        f"`python benchmarks/executors.py --seeds {args.seeds}` on {machine['cores']} cores (wall seconds of",
        "the whole command, start-up included; every worker and the local run use one torch thread).",
        "",
        "| workload | jobs | local, 1 thread | processes, 1 worker | processes, 2 workers | 2 vs 1 worker "
        "| 2 workers vs local | same metrics |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for workload, entry in measured.items():
        runs = entry["runs"]
        same = all(r["same_metrics"] for r in runs.values())
        lines.append(
            f"| {workload} | {runs['local, 1 thread']['jobs']} | "
            + " | ".join(f"{runs[e]['wall_s']:.1f} s" for e in EXECUTORS)
            + f" | {entry['speedup_2_over_1_worker']:.2f}x | {entry['speedup_2_workers_over_local']:.2f}x | "
            + ("yes" if same else "**no**")
            + " |"
        )
    (args.out / "executors.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
