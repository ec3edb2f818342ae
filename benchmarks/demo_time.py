"""Wall time and peak memory of ``i2m2 demo`` (the README's figure), written to benchmarks/results/.

Run by hand:  python benchmarks/demo_time.py [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def tree_pss_mb(root: int) -> float:
    """The summed proportional set size of ``root`` and every process below it (Linux /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        parents[int(stat.parent.name)] = int(fields[1])
    tree, grew = {root}, True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= below
        grew = bool(below)
    total_kb = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="OMP/MKL threads (the CI machine has 2 cores)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "demo_time.json")
    args = parser.parse_args()
    env = {
        **os.environ,
        "CI": "true",
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
    }
    script = Path(sys.executable).with_name("i2m2")
    walls: list[float] = []
    peaks: list[float] = []
    for repeat in range(args.repeats + 1):
        # The timed runs are left alone; one more run is sampled for memory (reading /proc takes CPU).
        sampled = repeat == args.repeats
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            demo = subprocess.Popen(
                [str(script), "demo", "--out", f"{tmp}/run"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            while sampled and demo.poll() is None:
                peaks.append(tree_pss_mb(demo.pid))
                time.sleep(0.2)
            demo.wait()
            if not sampled:
                walls.append(time.perf_counter() - start)
            if demo.returncode:
                raise SystemExit(f"i2m2 demo failed with exit status {demo.returncode}")
    peak_mb = max(peaks, default=0.0)
    record = {
        "command": "i2m2 demo",
        "repeats": args.repeats,
        "threads": args.threads,
        "wall_s": {"median": statistics.median(walls), "min": min(walls), "max": max(walls), "all": walls},
        # The demo's worker processes are forked from a fork server and share its pages: their memory is
        # counted as PSS (each shared page split among its sharers), summed over the whole process tree.
        "peak_pss_mb": round(peak_mb, 1),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
