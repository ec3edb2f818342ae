"""One Table 1 under both presets from seeds run on different machines (issue 14).

The GPU run of ``avmnist_presets.sh`` stopped at its device budget with some seeds finished; the missing
seeds were run on CPU with ``--first-seed`` (seed k is the same job wherever it runs). This script takes,
for each preset and seed, the whole chain of one machine (the I2M2 rows of a seed start from that machine's
stage-1 experts, so rows of one seed are never mixed across machines): the GPU's where its chain finished,
otherwise the CPU run folder ``CPU_RUNS/PRESET-sSEED``.

    python benchmarks/avmnist_presets_merge.py \\
        --gpu benchmarks/results/avmnist_presets/table1_presets.json --cpu-runs /tmp/presets \\
        --out benchmarks/results/avmnist_presets

Writes ``table1_presets_full.md`` and ``table1_presets_full.json`` (every value with its seed and machine).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from avmnist_presets import PRESETS, ROWS, cell, job_records

LAST_JOB = "i2m2[lrtf]"  # the last job of a seed's chain: a seed whose record of it exists is complete


def gpu_seeds(summary: dict[str, Any]) -> dict[str, dict[tuple[str, int], dict[str, float]]]:
    """Per preset, {(method, seed): {metric: value}} from the GPU table's per-seed lists.

    The runs train seed 0's whole chain, then seed 1's, ...: a list of n values holds seeds 0..n-1."""
    out: dict[str, dict[tuple[str, int], dict[str, float]]] = {p: {} for p in PRESETS}
    for row in summary["rows"]:
        for preset, values in row["per_seed"].items():
            for seed, value in enumerate(values):
                out[preset].setdefault((row["method"], seed), {})[row["metric"]] = value
    return out


def gpu_epochs(markdown: str) -> dict[str, dict[tuple[str, int], int]]:
    """Per preset, {(method, seed): epochs} from the GPU table's "epochs run per job" section."""
    out: dict[str, dict[tuple[str, int], int]] = {p: {} for p in PRESETS}
    section = markdown.split("Epochs run per job", 1)[1]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 1 + len(PRESETS) or cells[0] in ("job", "---"):
            continue
        for preset, text in zip(PRESETS, cells[1:], strict=True):
            for seed, value in enumerate(v for v in text.split(",") if v.strip() not in ("", "-")):
                out[preset][(cells[0], seed)] = int(value)
    return out


def merge(args: argparse.Namespace) -> dict[str, Any]:
    gpu_summary = json.loads(args.gpu.read_text())
    gpu, gpu_ep = gpu_seeds(gpu_summary), gpu_epochs(gpu_summary["markdown"])
    chosen: dict[str, dict[int, dict[str, Any]]] = {p: {} for p in PRESETS}
    for preset in PRESETS:
        for seed in range(args.seeds):
            if (LAST_JOB, seed) in gpu[preset]:
                jobs = {m: v for (m, s), v in gpu[preset].items() if s == seed}
                epochs = {m: v for (m, s), v in gpu_ep[preset].items() if s == seed}
                chosen[preset][seed] = {"machine": gpu_summary["device"], "metrics": jobs, "epochs": epochs}
                continue
            folder = args.cpu_runs / f"{preset}-s{seed}"
            if not (folder / "jobs").is_dir():
                continue
            records = {m: r for (m, s), r in job_records(folder).items() if s == seed}
            chosen[preset][seed] = {
                "machine": "cpu (2-core shared machine, one torch thread)",
                "folder": str(folder),
                "complete": LAST_JOB in records,
                "metrics": {m: r["metrics"] for m, r in records.items()},
                "epochs": {m: r.get("epochs") for m, r in records.items()},
                "wall_time_s": {m: r.get("wall_time_s") for m, r in records.items()},
            }
    lines = ["| row | " + " | ".join(f"`{p}`" for p in PRESETS) + " |", "|---|" + "---|" * len(PRESETS)]
    rows = []
    for label, method, metric in ROWS:
        values = {
            p: {
                s: c["metrics"][method][metric]
                for s, c in chosen[p].items()
                if metric in c["metrics"].get(method, {})
            }
            for p in PRESETS
        }
        rows.append({"row": label, "method": method, "metric": metric, "per_seed": values})
        lines.append(f"| {label} | " + " | ".join(cell(list(values[p].values())) for p in PRESETS) + " |")
    where = ["| preset | seed | machine | jobs | epochs per job |", "|---|---|---|---|---|"]
    for preset in PRESETS:
        for seed, c in sorted(chosen[preset].items()):
            order = [m for m in dict.fromkeys(m for _, m, _ in ROWS) if m in c["epochs"]]
            epochs = ", ".join(f"{m} {c['epochs'][m]}" for m in order)
            where.append(f"| `{preset}` | {seed} | {c['machine']} | {len(c['metrics'])} | {epochs} |")
    markdown = "\n".join(
        [
            "# AV-MNIST Table 1 under both recipe presets, full epoch budget",
            "",
            "Test accuracy (%), mean ± std over the seeds (population std); a cell without a seed count has "
            f"{args.seeds}. Each seed's chain (stage 1, then stage 2 from its experts) ran on one machine:",
            "",
            *lines,
            "",
            "Where each seed ran, and the epochs each job ran (early stopping):",
            "",
            *where,
        ]
    )
    return {"rows": rows, "seeds": {p: chosen[p] for p in PRESETS}, "markdown": markdown + "\n"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", type=Path, required=True, help="table1_presets.json of the GPU run")
    parser.add_argument("--cpu-runs", type=Path, required=True, help="folder of PRESET-sSEED run folders")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    if not args.gpu.is_file():
        print(f"--gpu: no such file {args.gpu}", file=sys.stderr)
        return 2
    summary = merge(args)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("table1_presets_full.md", summary["markdown"]),
        ("table1_presets_full.json", json.dumps(summary, indent=2) + "\n"),
    ):
        partial = args.out / f".{name}.tmp"
        partial.write_text(text)
        partial.replace(args.out / name)
    print(summary["markdown"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
