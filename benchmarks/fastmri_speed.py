"""fastMRI speed and memory on CPU: preprocessing with and without the cache, and training per method.

Run by hand (not a test):  python benchmarks/fastmri_speed.py [--volumes 12] [--size 64] [--width 8]
    [--architecture cnn|preact18|wrn20-3]
Writes benchmarks/results/fastmri_speed.json and .md. Each measurement runs in its own process so its
peak resident memory (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Any


def preprocessing(root: str, size: int, cache: str | None, queue: Any) -> None:
    """Read every training slice once (an epoch of preprocessing); with a cache, a second pass too."""
    from i2m2.data.fastmri import load_fastmri
    from i2m2.data.fastmri_phantom import phantom_max_width

    train, _, _ = load_fastmri(
        Path(root),
        0,
        crop=size,
        max_width=phantom_max_width(size),
        cache_dir=None if cache is None else Path(cache),
    )
    passes = []
    for _ in range(1 if cache is None else 2):  # the cache's first pass writes it, the second reads it
        start = time.perf_counter()
        for i in range(len(train)):
            train[i]
        passes.append(len(train) / (time.perf_counter() - start))
    queue.put(
        {"slices_per_s": passes, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    )


def training(
    root: str, size: int, arch: str, width: int, method: str, cache: str, epochs: int, queue: Any
) -> None:
    """One job of ``method`` for ``epochs`` epochs through the job loop; training slices per second."""
    import torch

    from i2m2.catalog import get_experiment
    from i2m2.data.fastmri_phantom import phantom_max_width
    from i2m2.orchestration.comparison import run_experiment

    torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) - 1))
    experiment = get_experiment(
        "fastmri-knee",
        data_dir=Path(root),
        crop=size,
        max_width=phantom_max_width(size),
        architecture=arch,
        width=width,
        preset="cpu",
        cache_dir=Path(cache),
    )
    slices = len(experiment.load_data("", Path(root), 0).train)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        rows = run_experiment(
            experiment,
            out,
            seeds=1,
            methods=[method],
            max_epochs=epochs,
            data_dir=Path(root),
            epoch_progress=False,
        )
        wall = time.perf_counter() - start
        stage1 = 0.0
        for job in Path(out, "jobs").glob("*.json"):
            record = json.loads(job.read_text())
            if record["method"] != method:
                stage1 += record["wall_time_s"]
    queue.put(
        {
            "job_wall_s": round(wall - stage1, 1),
            "train_slices_per_s_incl_eval": round(slices * epochs / (wall - stage1), 1),
            "auroc": rows[-1]["metrics"]["auroc"]["mean"],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


def in_process(target: Any, *args: Any) -> dict[str, Any]:
    queue: Any = mp.get_context("spawn").Queue()
    process = mp.get_context("spawn").Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return dict(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--volumes", type=int, default=12)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--architecture", default="cnn")
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fastmri_speed.json")
    args = parser.parse_args()
    from i2m2.data.fastmri_phantom import write_phantom_dataset

    results: dict[str, Any] = {
        "machine": {"cores": len(os.sched_getaffinity(0)), "python": platform.python_version()},
        "settings": vars(args) | {"out": str(args.out)},
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = str(write_phantom_dataset(Path(tmp) / "phantom", volumes=args.volumes, size=args.size))
        results["preprocessing"] = {
            "no cache": in_process(preprocessing, root, args.size, None),
            "cache (write, then read)": in_process(preprocessing, root, args.size, f"{tmp}/cache"),
        }
        results["training"] = {
            m: in_process(
                training, root, args.size, args.architecture, args.width, m, f"{tmp}/cache", args.epochs
            )
            for m in ("unimodal:magnitude", "inter", "intra", "i2m2")
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        f"# fastMRI speed ({results['machine']['cores']} CPU cores, phantom {args.volumes} volumes x 10 "
        f"slices, {args.size}x{args.size}, {args.architecture} width {args.width})\n",
        "| preprocessing | slices/s | peak RSS (MB) |",
        "|---|---|---|",
    ]
    for name, r in results["preprocessing"].items():
        rates = " then ".join(f"{v:.0f}" for v in r["slices_per_s"])
        lines.append(f"| {name} | {rates} | {r['peak_rss_mb']:.0f} |")
    lines += [
        "",
        f"| training ({args.epochs} epochs, stage-1 jobs excluded) | job wall (s) | training slices/s incl. "
        "validation and test | peak RSS (MB) |",
        "|---|---|---|---|",
    ]
    for name, r in results["training"].items():
        lines.append(
            f"| {name} | {r['job_wall_s']} | {r['train_slices_per_s_incl_eval']} | {r['peak_rss_mb']:.0f} |"
        )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
