"""Wall time and peak memory of ``i2m2 demo`` (the README's figure), written to benchmarks/results/.

Run by hand:  python benchmarks/demo_time.py [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


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
    walls = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            subprocess.run(
                [str(script), "demo", "--out", f"{tmp}/run"],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            walls.append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    record = {
        "command": "i2m2 demo",
        "repeats": args.repeats,
        "threads": args.threads,
        "wall_s": {"median": statistics.median(walls), "min": min(walls), "max": max(walls), "all": walls},
        "peak_rss_mb": round(peak_mb, 1),
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
