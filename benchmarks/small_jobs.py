"""Small jobs: per-job overhead of ``i2m2 run`` against a plain loop, and the demo beside a busy process.

Run by hand (figures go to benchmarks/results/small_jobs.{json,md}); pin it to two cores to measure what the
README promises for a 2-core machine, e.g. ``taskset -c 0,1 python benchmarks/small_jobs.py``.

1. ``i2m2 run synthetic --regimes both --seeds 1``: each job's wall time (from its record: model, Trainer,
   training with validation every epoch, test, predictions and files) against a plain loop of the same
   epochs (train steps, a validation pass per epoch, one test pass), same model and batch size.
2. ``i2m2 demo`` on an idle machine and beside one busy process (a spinning Python loop), with the CLI's
   default thread count, and once with as many threads as cores (torch's own default) for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from i2m2.catalog import get_experiment
from i2m2.experiment import Experiment
from i2m2.models.methods import build_method
from i2m2.models.product_of_experts import product_of_experts

CLI = [sys.executable, "-m", "i2m2.cli.main"]


def cores() -> int:
    return len(os.sched_getaffinity(0))


def run(argv: list[str], threads: int | None = None) -> float:
    env = {**os.environ, "CI": "true"}
    if threads is not None:
        argv = [*argv, "--threads", str(threads)]
    started = time.perf_counter()
    done = subprocess.run([*CLI, *argv], capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return time.perf_counter() - started


def plain_loop(
    experiment: Experiment, method: str, epochs: int, splits: Any, batch: int, lr: float, wd: float
) -> float:
    """The job's steps without a framework: train epochs with a validation pass each, then one test pass."""
    classes = experiment.num_classes
    torch.manual_seed(0)
    model = build_method(
        method,
        experiment.modalities,
        unimodal=lambda m: experiment.build_unimodal(m, classes, "both"),
        inter=lambda mods: experiment.build_inter["lf"](mods, classes, "both"),
        num_classes=classes,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    x, y = splits.train.inputs, splits.train.labels
    started = time.perf_counter()

    def evaluate(inputs: dict[str, torch.Tensor]) -> None:
        model.eval()
        with torch.no_grad():
            n = len(next(iter(inputs.values())))
            for s in range(0, n, batch):
                model({m: v[s : s + batch] for m, v in inputs.items()})
        model.train()

    for _ in range(epochs):
        order = torch.randperm(len(y))
        for s in range(0, len(y), batch):
            i = order[s : s + batch]
            logits, masks = model.expert_logits({m: v[i] for m, v in x.items()}, check_values=False)
            loss = F.nll_loss(product_of_experts(list(logits.values()), list(masks.values())), y[i])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        evaluate(splits.val.inputs)
    evaluate(splits.test.inputs)
    return time.perf_counter() - started


def per_job_overhead(threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        run(["run", "synthetic", "--regimes", "both", "--seeds", "1", "--out", f"{tmp}/run"], threads)
        records = [json.loads(p.read_text()) for p in sorted(Path(tmp, "run", "jobs").glob("*.json"))]
    experiment = get_experiment("synthetic", regimes=["both"])
    splits = experiment.load_data("both", None, 0)
    rows = {}
    for record in records:
        method = record["method"]
        stage = experiment.recipe.finetune if method in ("intra", "i2m2") else experiment.recipe.pretrain
        plain = plain_loop(
            experiment, method, record["epochs"], splits, stage.batch_size, stage.lr, stage.weight_decay
        )
        rows[method] = {
            "epochs": record["epochs"],
            "i2m2_s": record["wall_time_s"],
            "plain_s": round(plain, 3),
            "ratio": round(record["wall_time_s"] / plain, 2),
        }
    return rows


def busy() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def demo_beside_busy_process() -> dict[str, Any]:
    results: dict[str, Any] = {}
    for label, threads in (("default threads", None), (f"{cores()} threads", cores())):
        with tempfile.TemporaryDirectory() as tmp:
            idle = run(["demo", "--out", f"{tmp}/idle"], threads)
            spinner = busy()
            try:
                loaded = run(["demo", "--out", f"{tmp}/busy"], threads)
            finally:
                spinner.kill()
        results[label] = {
            "idle_s": round(idle, 1),
            "busy_s": round(loaded, 1),
            "ratio": round(loaded / idle, 2),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="threads of part 1 (ours and the plain loop)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    report = {
        "cores": cores(),
        "per_job_overhead": per_job_overhead(args.threads),
        "demo_beside_busy_process": demo_beside_busy_process(),
    }
    lines = [
        f"# Small jobs on {report['cores']} cores",
        "",
        "## Per-job overhead (synthetic 'both', seed 0)",
        "",
    ]
    lines += ["| job | epochs | i2m2 whole job (s) | plain loop (s) | ratio |", "|---|---|---|---|---|"]
    for method, r in report["per_job_overhead"].items():
        lines.append(
            f"| {method} | {r['epochs']} | {r['i2m2_s']:.2f} | {r['plain_s']:.2f} | {r['ratio']:.2f} |"
        )
    lines += ["", "## i2m2 demo beside one busy process", "", "| threads | idle (s) | busy (s) | ratio |"]
    lines += ["|---|---|---|---|"]
    for label, r in report["demo_beside_busy_process"].items():
        lines.append(f"| {label} | {r['idle_s']} | {r['busy_s']} | {r['ratio']} |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "small_jobs.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "small_jobs.md").write_text(text)


if __name__ == "__main__":
    main()
