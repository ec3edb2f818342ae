"""Small jobs at the floor: per-job and per-epoch fixed costs, in one command.

``python benchmarks/small_jobs.py`` writes benchmarks/results/small_jobs.{json,md} (``--parts`` picks some).
Pin it to two cores to measure what the README promises for a 2-core machine, e.g.
``taskset -c 0,1 python benchmarks/small_jobs.py``. Speed is a ratio measured in the same run; each figure
also has its CPU seconds, which a busy machine inflates less than wall seconds.

1. ``profile``: where one job's fixed time goes (:mod:`job_profile`): a demo job (``unimodal:m0``, 'both'
   regime, seed 0) and one AV-MNIST epoch (inter LF, batch 40, data in MultiBench's format).
2. ``jobs``: each job of ``i2m2 run synthetic --regimes both --seeds 1`` (stage 1, then stage 2 from its
   weights, run in this process as the CLI runs them) against a plain loop of the same epochs (train steps,
   a validation pass per epoch, one test pass), same model and batch size; job then loop, job by job.
3. ``demo``: ``i2m2 demo`` (45 jobs) on an idle machine and beside one busy process (a spinning Python
   loop): as it runs by default (its jobs side by side in worker processes, one per core, one thread each),
   and one after another in its own process (``--executor local``) with the CLI's default thread count
   and with as many threads as cores (torch's own default). The CPU seconds are the driver's and the
   workers' that were waited for (the fork server's workers are not: read the wall seconds).
4. ``subsets``: six feature views (``benchmarks/synthetic_views_npz.py``), one seed: ``i2m2 run features``
   with and without ``--all-subsets`` (57 inter experts in the inter and I2M2 jobs), and each of the two
   runs' inter and i2m2 jobs against a plain loop of the same model and epochs (is it per-job cost or
   compute?).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from i2m2.catalog import ExperimentRef
from i2m2.experiment import Experiment, Splits
from i2m2.models.i2m2 import I2M2
from i2m2.models.product_of_experts import product_of_experts

sys.path.insert(0, str(Path(__file__).parent))
import job_profile

CLI = [str(Path(sys.executable).with_name("i2m2"))]  # the console script, as a user runs it
PARTS = ("profile", "jobs", "demo", "subsets")


def cores() -> int:
    return len(os.sched_getaffinity(0))


def load() -> float:
    return round(os.getloadavg()[0], 2)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(argv: list[str], threads: int | None = None) -> dict[str, float]:
    """One CLI command in a subprocess: its wall and CPU seconds."""
    env = {**os.environ, "CI": "true"}
    if threads is not None:
        argv = [*argv, "--threads", str(threads)]
    cpu, started = children_cpu(), time.perf_counter()
    done = subprocess.run([*CLI, *argv], capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return {"wall_s": round(time.perf_counter() - started, 2), "cpu_s": round(children_cpu() - cpu, 2)}


def timed(work: Callable[..., Any], *args: Any) -> tuple[Any, dict[str, float]]:
    cpu, started = time.process_time(), time.perf_counter()
    result = work(*args)
    return result, {"wall_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu}


def plain_loop(model: I2M2, splits: Splits, epochs: int, batch: int, lr: float, wd: float) -> None:
    """The job's steps without a framework: train epochs with a validation pass each, then one test pass."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    x, y = splits.train.inputs, splits.train.labels  # type: ignore[attr-defined]

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
        evaluate(splits.val.inputs)  # type: ignore[attr-defined]
    evaluate(splits.test.inputs)  # type: ignore[attr-defined]


def job_vs_plain(
    experiment: Experiment, group: str, methods: list[str], all_subsets: bool = False
) -> dict[str, Any]:
    """Each job as ``i2m2 run`` runs it (stage 2 from stage 1's weights), then a plain loop of its epochs."""
    from i2m2.orchestration.job import JobSpec, job_splits, run_job
    from i2m2.orchestration.plan import plan_jobs

    rows: dict[str, Any] = {}
    weights: dict[str, Any] = {}
    for job in plan_jobs(experiment, methods, False):
        stage = experiment.stage_config(job.method)
        spec = JobSpec(
            experiment=experiment,
            method=job.method,
            group=group,
            seed=0,
            stage=stage,
            all_subsets=all_subsets,
            init_from={source: weights[source] for source in job.init_from},
        )
        result, ours = timed(run_job, spec)
        weights[job.method] = result.state_dict
        torch.manual_seed(0)
        model = experiment.build_model(job.method, group, None, all_subsets)
        splits = job_splits(spec)
        _, plain = timed(
            plain_loop, model, splits, result.epochs, stage.batch_size, stage.lr, stage.weight_decay
        )
        rows[job.method] = {
            "epochs": result.epochs,
            "experts": len(model.experts),
            "i2m2_s": round(ours["wall_s"], 3),
            "plain_s": round(plain["wall_s"], 3),
            "ratio": round(ours["wall_s"] / plain["wall_s"], 2),
            "cpu_ratio": round(ours["cpu_s"] / max(plain["cpu_s"], 1e-9), 2),
            "phases_s": result.phases,
        }
    total = {k: sum(r[k] for r in rows.values()) for k in ("i2m2_s", "plain_s")}
    rows["all jobs"] = {
        **{k: round(v, 3) for k, v in total.items()},
        "ratio": round(total["i2m2_s"] / total["plain_s"], 2),
    }
    return rows


def part_profile() -> dict[str, Any]:
    from avmnist_vs_reference import write_data

    from i2m2.catalog import get_experiment
    from i2m2.orchestration.job import JobSpec, run_job

    profiles = {}
    demo = job_profile.demo_job("unimodal:m0")
    demo()  # warm-up: imports and first-call caches
    profiles["demo unimodal:m0 (whole job)"] = job_profile.profile(demo)
    with tempfile.TemporaryDirectory() as tmp:
        write_data(Path(tmp), scale=0.02)  # 1,100 train / 100 val / 200 test
        experiment = get_experiment("avmnist", recipe="authors-code")
        stage = experiment.stage_config("inter", max_epochs=1)
        stage = type(stage)(**{**vars(stage), "batch_size": 40, "patience": None, "bn_stats": "running"})
        spec = JobSpec(
            experiment=experiment, method="inter", group="", seed=0, stage=stage, data_dir=Path(tmp)
        )
        run_job(spec)  # warm-up (and the data loaded once)
        profiles["AV-MNIST inter LF, one epoch (batch 40)"] = job_profile.profile(lambda: run_job(spec))
    return profiles


def part_jobs() -> dict[str, Any]:
    experiment = ExperimentRef.of("synthetic", regimes=["both"]).build()
    job_vs_plain(experiment, "both", ["unimodal:m0"])  # warm-up
    return job_vs_plain(experiment, "both", ["unimodal:m0", "unimodal:m1", "inter", "intra", "i2m2"])


def busy() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def part_demo() -> dict[str, Any]:
    results: dict[str, Any] = {}
    variants: tuple[tuple[str, list[str], int | None], ...] = (
        ("default: side by side, one thread per job", [], None),
        ("--executor local, default threads", ["--executor", "local"], None),
        (f"--executor local, {cores()} threads", ["--executor", "local"], cores()),
    )
    for label, options, threads in variants:
        with tempfile.TemporaryDirectory() as tmp:
            idle = run(["demo", *options, "--out", f"{tmp}/idle"], threads)
            spinner = busy()
            try:
                loaded = run(["demo", *options, "--out", f"{tmp}/busy"], threads)
            finally:
                spinner.kill()
        results[label] = {"idle": idle, "busy": loaded, "ratio": round(loaded["wall_s"] / idle["wall_s"], 2)}
    return results


def part_subsets(threads: int | None) -> dict[str, Any]:
    from i2m2.catalog import get_experiment

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp, "views6")
        views = [sys.executable, str(Path(__file__).parent / "synthetic_views_npz.py"), str(data)]
        subprocess.run([*views, "--views", "6"], check=True, capture_output=True)
        base = ["run", "features", "--data-dir", str(data), "--seeds", "1"]
        without = run([*base, "--out", f"{tmp}/without"], threads)
        with_subsets = run([*base, "--all-subsets", "--out", f"{tmp}/with"], threads)
        jobs, compute = {}, {}
        experiment = get_experiment("features", data_dir=data)
        splits = experiment.load_splits("", None, 0)
        for name in ("without", "with"):
            records = {
                r["method"]: r
                for r in map(json.loads, map(Path.read_text, Path(tmp, name, "jobs").glob("*.json")))
            }
            jobs[name] = {
                "jobs": len(records),
                "job_wall_s": round(sum(r["wall_time_s"] for r in records.values()), 2),
                "by_method": {m: r["wall_time_s"] for m, r in records.items()},
            }
            rows = {}
            for method in ("inter", "i2m2"):  # each job's record against a plain loop of its model and epochs
                record, stage = records[method], experiment.stage_config(method)
                torch.manual_seed(0)
                model = experiment.build_model(method, "", None, name == "with")
                _, plain = timed(
                    plain_loop,
                    model,
                    splits,
                    record["epochs"],
                    stage.batch_size,
                    stage.lr,
                    stage.weight_decay,
                )
                rows[method] = {
                    "experts": len(model.experts),
                    "epochs": record["epochs"],
                    "i2m2_s": record["wall_time_s"],
                    "plain_s": round(plain["wall_s"], 3),
                    "ratio": round(record["wall_time_s"] / plain["wall_s"], 2),
                }
            compute["--all-subsets" if name == "with" else "one inter expert"] = rows
    return {
        "without": without,
        "with": with_subsets,
        "ratio": round(with_subsets["wall_s"] / without["wall_s"], 2),
        "cpu_ratio": round(with_subsets["cpu_s"] / without["cpu_s"], 2),
        "jobs": jobs,
        "job_vs_plain": compute,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Small jobs on {report['cores']} cores",
        "",
        f"Load average (1 min) at the start and end: {report['load'][0]} / {report['load'][-1]}. Ratios are "
        "measured in the same run; CPU ratios are less sensitive to other processes.",
    ]
    if "profile" in report:
        lines += ["", "## Where one job's time goes (exclusive seconds per part)", ""]
        lines += job_profile.table(report["profile"])
    if "jobs" in report:
        lines += ["", "## Per-job overhead (synthetic 'both', seed 0; target: ratio <= 2)", ""]
        lines += [
            "| job | epochs | i2m2 whole job (s) | plain loop (s) | ratio | CPU ratio |",
            "|---|---|---|---|---|---|",
        ]
        for method, r in report["jobs"].items():
            lines.append(
                f"| {method} | {r.get('epochs', '')} | {r['i2m2_s']:.2f} | {r['plain_s']:.2f} "
                f"| {r['ratio']:.2f} | {r.get('cpu_ratio', '')} |"
            )
    if "demo" in report:
        lines += ["", "## i2m2 demo, idle and beside one busy process (target: <= 10 s idle on 2 cores)", ""]
        lines += ["| jobs | idle (s) | idle CPU (s) | busy (s) | ratio |", "|---|---|---|---|---|"]
        for label, r in report["demo"].items():
            lines.append(
                f"| {label} | {r['idle']['wall_s']} | {r['idle']['cpu_s']} | {r['busy']['wall_s']} "
                f"| {r['ratio']} |"
            )
    if "subsets" in report:
        s = report["subsets"]
        lines += ["", "## Six views, one seed: --all-subsets against the run without it (target: <= 2x)", ""]
        lines += ["| run | jobs | wall (s) | CPU (s) | sum of job times (s) |", "|---|---|---|---|---|"]
        for label, key in (("without", "without"), ("--all-subsets", "with")):
            j = s["jobs"][key]
            lines.append(
                f"| {label} | {j['jobs']} | {s[key]['wall_s']} | {s[key]['cpu_s']} | {j['job_wall_s']} |"
            )
        lines.append(f"| **ratio** | | **{s['ratio']}** | {s['cpu_ratio']} | |")
        lines += ["", "Inter and I2M2 jobs against a plain loop of the same model and epochs:", ""]
        lines += [
            "| run | job | experts | epochs | job (s) | plain loop (s) | ratio |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, rows in s["job_vs_plain"].items():
            for method, r in rows.items():
                lines.append(
                    f"| {label} | {method} | {r['experts']} | {r['epochs']} | {r['i2m2_s']:.2f} | "
                    f"{r['plain_s']:.2f} | {r['ratio']:.2f} |"
                )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument(
        "--threads", type=int, default=1, help="threads of the in-process parts (ours and the loop)"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    from i2m2.training.fit import quiet_lightning

    quiet_lightning()
    torch.set_num_threads(args.threads)
    report: dict[str, Any] = {"cores": cores(), "threads": args.threads, "load": [load()]}
    existing = args.out / "small_jobs.json"
    if set(args.parts) != set(PARTS) and existing.is_file():  # some parts again: keep the others' figures
        kept = {k: v for k, v in json.loads(existing.read_text()).items() if k in PARTS}
        report = {**kept, **report}
    if "profile" in args.parts:
        report["profile"] = part_profile()
    if "jobs" in args.parts:
        report["jobs"] = part_jobs()
    if "demo" in args.parts:
        report["demo"] = part_demo()
    if "subsets" in args.parts:
        report["subsets"] = part_subsets(None)
    report["load"].append(load())
    text = markdown(report)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "small_jobs.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "small_jobs.md").write_text(text)


if __name__ == "__main__":
    main()
