"""One epoch of each AV-MNIST job through ``i2m2 run``, against a bare PyTorch loop of the same steps.

Run by hand (figures go to benchmarks/results/avmnist_vs_reference.{json,md}):

    python benchmarks/avmnist_vs_reference.py                       # full size, 2 threads, CPU
    python benchmarks/avmnist_vs_reference.py --scale 0.2           # a fifth of the rows (ratios hold)
    python benchmarks/avmnist_vs_reference.py --accelerator gpu --batch-size 40 256

The data is generated in MultiBench's AV-MNIST layout (55,000 train / 5,000 val / 10,000 test at scale 1),
random but learnable. Each job runs once through the CLI (a subprocess, as a user runs it: its job records
give the seconds per phase) and once as a bare loop: the same models, tensors preloaded, batches sliced,
no Lightning. The reference is the authors' code on the same machine type (2 CPU cores, one epoch, batch
40): image 35 s, audio 125 s, inter LF 127 s, I2M2 LF 195 s (issue "Performance", measured beside ours).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from i2m2.data.avmnist import load_avmnist
from i2m2.experiments.avmnist import FINETUNE, PRETRAIN, avmnist_late_fusion, avmnist_unimodal_classifier
from i2m2.models.methods import build_method
from i2m2.models.product_of_experts import product_of_experts

AUTHORS_SECONDS = {"unimodal:image": 35.0, "unimodal:audio": 125.0, "inter": 127.0, "i2m2": 195.0}
JOBS = ("unimodal:image", "unimodal:audio", "inter", "i2m2")


def write_data(root: Path, scale: float, seed: int = 0) -> None:
    """Learnable AV-MNIST-format files: a class template per modality plus uniform noise, uint8 0..255."""
    rng = np.random.default_rng(seed)
    n_train, n_test = round(60000 * scale), round(10000 * scale)
    image_templates = rng.integers(0, 256, (10, 784)).astype(np.float32)
    audio_templates = rng.integers(0, 256, (10, 112 * 112)).astype(np.float32)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 10, n)
        np.save(root / f"{split}_labels.npy", labels)
        # MultiBench's shapes: images (N, 784), spectrograms (N, 112, 112)
        for modality, templates, weight, shape in (
            ("image", image_templates, 0.3, (784,)),
            ("audio", audio_templates, 0.15, (112, 112)),
        ):
            (root / modality).mkdir(exist_ok=True)
            out = np.lib.format.open_memmap(
                root / modality / f"{split}_data.npy",
                mode="w+",
                dtype=np.uint8,
                shape=(n, *shape),
            )
            for start in range(0, n, 4096):
                rows = labels[start : start + 4096]
                noise = rng.integers(0, 256, (len(rows), templates.shape[1])).astype(np.float32)
                mixed = (weight * templates[rows] + (1 - weight) * noise).astype(np.uint8)
                out[start : start + len(rows)] = mixed.reshape(len(rows), *shape)
            out.flush()


def run_cli(data: Path, out: Path, threads: int, accelerator: str, batch: int) -> dict[str, Any]:
    """All four jobs through ``i2m2 run`` (stage 1 then the I2M2 joint stage), one epoch each."""
    argv = [sys.executable, "-m", "i2m2.cli.main", "run", "avmnist", "--data-dir", str(data)]
    argv += ["--methods", "unimodal:image", "unimodal:audio", "inter", "i2m2", "--fusion", "lf"]
    argv += ["--seeds", "1", "--max-epochs", "1", "--out", str(out), "--threads", str(threads)]
    argv += ["--trainer.accelerator", accelerator, "--pretrain.batch_size", str(batch)]
    argv += [
        "--finetune.batch_size",
        str(batch),
        "--pretrain.patience",
        "null",
        "--finetune.patience",
        "null",
    ]
    # The same work as the bare loop: BatchNorm's running statistics, not the paper preset's extra pass
    # over the training set before each evaluation (its cost is reported separately in docs/performance.md).
    argv += ["--pretrain.bn_stats", "running", "--finetune.bn_stats", "running"]
    env = {**os.environ, "CI": "true"}
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    total = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"i2m2 run failed:\n{done.stderr[-3000:]}")
    records = {}
    for path in (out / "jobs").glob("*.json"):
        record = json.loads(path.read_text())
        name = record["method"].replace("inter[lf]", "inter").replace("i2m2[lf]", "i2m2")
        records[name] = {"wall_s": record["wall_time_s"], **record["phases_s"]}
    return {"process_s": round(total, 2), "jobs": records}


def bare_loop(data: Path, threads: int, device: str, batch: int) -> dict[str, Any]:
    """The same models and steps as a plain loop: preloaded tensors, sliced batches, no framework."""
    torch.set_num_threads(threads)
    splits = load_avmnist(data, 0)
    train = {m: x.to(device) for m, x in splits.train.inputs.items()}
    labels = splits.train.labels.to(device)
    evaluation = [
        ({m: x.to(device) for m, x in s.inputs.items()}, s.labels) for s in (splits.val, splits.test)
    ]
    modalities = ("image", "audio")
    results: dict[str, Any] = {}
    weights: dict[str, dict[str, torch.Tensor]] = {}
    for job in JOBS:
        model = build_method(
            job,
            modalities,
            unimodal=lambda m: avmnist_unimodal_classifier(m, 10),
            inter=lambda mods: avmnist_late_fusion(mods, 10),
            num_classes=10,
        ).to(device)
        if job == "i2m2":
            model.load_state_dict(weights["unimodal:image"] | weights["unimodal:audio"] | weights["inter"])
        config = FINETUNE if job == "i2m2" else PRETRAIN
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        model.train()
        order = torch.randperm(len(labels), device=device)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        sync()
        started = time.perf_counter()
        for start in range(0, len(order), batch):
            index = order[start : start + batch]
            logits, masks = model.expert_logits({m: x[index] for m, x in train.items()}, check_values=False)
            loss = F.nll_loss(product_of_experts(list(logits.values()), list(masks.values())), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.gradient_clip_val or 1e9)
            optimizer.step()
        sync()
        train_s = time.perf_counter() - started
        model.eval()
        started = time.perf_counter()
        with torch.no_grad():
            for inputs, _ in evaluation:
                for start in range(0, len(next(iter(inputs.values()))), batch):
                    model({m: x[start : start + batch] for m, x in inputs.items()})
        sync()
        results[job] = {
            "train": round(train_s, 3),
            "forward_val_test": round(time.perf_counter() - started, 3),
        }
        weights[job] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return results


def summarize(cli: dict[str, Any], bare: dict[str, Any], scale: float) -> dict[str, Any]:
    rows = {}
    for job in JOBS:
        ours, floor = cli["jobs"][job], bare[job]
        whole_floor = floor["train"] + floor["forward_val_test"]
        rows[job] = {
            "ours": ours,
            "bare": floor,
            "train_ratio": round(ours["train"] / floor["train"], 3),
            "job_ratio": round(ours["wall_s"] / whole_floor, 3),
            "speedup_vs_authors_full_size": round(AUTHORS_SECONDS[job] / (ours["wall_s"] / scale), 2),
        }
    experts = sum(bare[j]["train"] for j in ("unimodal:image", "unimodal:audio", "inter"))
    return {
        "jobs": rows,
        "i2m2_step_over_sum_of_experts": round(bare["i2m2"]["train"] / experts, 3),
        "targets": {
            "train_ratio <= 1.10": all(r["train_ratio"] <= 1.10 for r in rows.values()),
            "job_ratio <= 1.25": all(r["job_ratio"] <= 1.25 for r in rows.values()),
            "i2m2 >= 1.3x authors": rows["i2m2"]["speedup_vs_authors_full_size"] >= 1.3,
        },
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# AV-MNIST, one epoch per job: i2m2 against a bare loop ({report['machine']})",
        "",
        f"scale {report['scale']} ({report['rows']}), batch {report['batch']}, {report['threads']} threads, "
        f"{report['accelerator']}; the authors' seconds are at full size on 2 CPU cores.",
        "",
        "| job | i2m2 train / val / test / whole (s) | bare train / forward (s) | train ratio | job ratio | "
        "x authors (full size) |",
        "|---|---|---|---|---|---|",
    ]
    for job, r in report["summary"]["jobs"].items():
        o, b = r["ours"], r["bare"]
        lines.append(
            f"| {job} | {o['train']:.1f} / {o['val']:.1f} / {o['test']:.1f} / {o['wall_s']:.1f} | "
            f"{b['train']:.1f} / {b['forward_val_test']:.1f} | {r['train_ratio']:.2f} | "
            f"{r['job_ratio']:.2f} | {r['speedup_vs_authors_full_size']:.2f} |"
        )
    s = report["summary"]
    lines += [
        "",
        f"I2M2 joint step / sum of its experts' steps (bare): {s['i2m2_step_over_sum_of_experts']:.2f}",
    ]
    lines += [
        "",
        "targets: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in s["targets"].items()),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full 70,000 rows")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--batch-size", type=int, nargs="+", default=[40])
    parser.add_argument("--data-dir", type=Path, help="reuse generated data")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    device = "cuda" if args.accelerator == "gpu" else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data_dir or Path(tmp) / "avmnist"
        if args.data_dir is None:
            data.mkdir()
            write_data(data, args.scale)
        reports = []
        for batch in args.batch_size:
            cli = run_cli(data, Path(tmp) / f"run{batch}", args.threads, args.accelerator, batch)
            bare = bare_loop(data, args.threads, device, batch)
            report = {
                "machine": f"{platform.machine()}, {os.cpu_count()} cores visible"
                + (f", {torch.cuda.get_device_name()}" if device == "cuda" else ""),
                "scale": args.scale,
                "rows": f"{round(55000 * args.scale)} train / {round(5000 * args.scale)} val / "
                f"{round(10000 * args.scale)} test",
                "batch": batch,
                "threads": args.threads,
                "accelerator": args.accelerator,
                "cli": cli,
                "bare": bare,
                "summary": summarize(cli, bare, args.scale),
                "peak_rss_mb_benchmark": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
            reports.append(report)
            print(markdown(report))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "avmnist_vs_reference" + ("_gpu" if device == "cuda" else "")
    (args.out / f"{stem}.json").write_text(json.dumps(reports, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text("\n".join(markdown(r) for r in reports))


if __name__ == "__main__":
    main()
