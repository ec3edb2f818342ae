"""Many modalities: one inter expert, one per subset, or one null-token network? (issue 13; paper, Section 5)

On the synthetic generator (K = 2, an inter-dominant-ish regime: intra = 0.5, inter = 3.0) with M = 3, 4, 6:

* ``late (one)``: one late-fusion inter expert over all modalities (``I2M2`` with only ``inter``);
* ``late (all subsets)``: one late-fusion inter expert per subset of two or more modalities
  (``inter_subsets(..., all_subsets=True)``, ``--all-subsets``), trained jointly through their product;
* ``null-token (one conditional)``: one :class:`~i2m2.NullTokenFusion` trained on random subsets, giving one
  conditional ``p(y | x_present)`` (``--fusion null-token``);
* ``null-token-product``: the same network read as the paper's Section 5 product
  (:class:`~i2m2.SubsetProductFusion`, ``--fusion null-token-product``): per training example k = 4 random
  subset-conditionals ``p(y | x_S)`` multiplied; at test time every subset of the present modalities
  (``test: all``), and at M = 6 also a fixed sample of 8 subsets (``test: 8 fixed``).

Each is scored with all modalities, with each single modality withheld (mean over modalities), and with
half of them withheld (mean over a few random halves). A withheld modality is marked absent in the presence
mask: in the late-fusion models, the experts reading it leave the product (no expert left: the uniform
distribution); the null-token network puts its null token there (the product multiplies the subsets of the
modalities left). Also: parameters, ms per training step and ms to score the 4000 test examples.

Run by hand: ``OMP_NUM_THREADS=1 python benchmarks/many_modalities.py`` (a few minutes on one core). Writes
``benchmarks/results/many_modalities.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from i2m2 import I2M2, Expert, SyntheticTask, create_fusion
from i2m2.models.methods import build_method

RESULTS = Path(__file__).parent / "results"
K, DIM, HIDDEN = 2, 8, 32
INTRA, INTER = 0.5, 3.0
HALVES = 4  # random half-subsets withheld per M
PRODUCT_K = 4  # subsets per training example of the null-token product
NULL_TOKEN = "null-token (one conditional)"
PRODUCT_ALL = f"null-token-product (k={PRODUCT_K}; test: all)"
PRODUCT_SAMPLE = f"null-token-product (k={PRODUCT_K}; test: 8 fixed)"

Score = Callable[[dict[str, Tensor], dict[str, Tensor]], Tensor]  # (batch, present) -> log p(y | x)


def build(kind: str, modalities: tuple[str, ...]) -> tuple[nn.Module, Score]:
    dims = dict.fromkeys(modalities, DIM)

    def late(subset: tuple[str, ...]) -> Expert:
        return create_fusion("late", {m: DIM for m in subset}, K, hidden=HIDDEN)

    if kind.startswith("null-token"):
        if kind == NULL_TOKEN:
            expert = create_fusion("null-token", dims, K, hidden=HIDDEN)
        else:  # the product: every subset at test time, or a fixed sample of 8
            sample = {"eval_subsets": 8} if kind == PRODUCT_SAMPLE else {}
            expert = create_fusion("null-token-product", dims, K, hidden=HIDDEN, k=PRODUCT_K, **sample)
        return expert, lambda batch, present: F.log_softmax(expert(batch, present=present), -1)
    if kind == "late (one)":
        model = I2M2(inter=late(modalities), num_classes=K)
    else:
        model = build_method(
            "inter", modalities, lambda m: nn.Identity(), late, all_subsets=True, num_classes=K
        )
    return model, lambda batch, present: model(batch, present=present)


def accuracy(score: Score, batch: dict[str, Tensor], labels: Tensor, withheld: tuple[str, ...]) -> float:
    present = {m: torch.full((len(labels),), m not in withheld) for m in batch}
    with torch.no_grad():
        return (score(batch, present).argmax(1) == labels).float().mean().item()


def run(kind: str, num_modalities: int, steps: int, n_train: int, seed: int) -> dict[str, float | int | str]:
    torch.manual_seed(seed)
    task = SyntheticTask(K, num_modalities, DIM, intra=INTRA, inter=INTER, noise=1.0, seed=0)
    train, test = task.sample(n_train, seed=1), task.sample(4000, seed=2)
    model, score = build(kind, task.modalities)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    everywhere = {m: torch.ones(128, dtype=torch.bool) for m in task.modalities}
    model.train()
    step_times = []
    for _ in range(steps):
        start = time.perf_counter()
        index = torch.randint(len(train), (128,))
        batch = {m: x[index] for m, x in train.inputs.items()}
        loss = F.nll_loss(score(batch, everywhere), train.labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step_times.append(time.perf_counter() - start)
    step_ms = 1000 * statistics.median(step_times)  # the median: robust to other jobs on a shared machine
    model.eval()
    mods = task.modalities
    rng = random.Random(seed)
    halves = [tuple(rng.sample(mods, num_modalities // 2)) for _ in range(HALVES)]
    test_times = []
    for _ in range(3):  # the fastest of three: robust to other jobs on a shared machine
        start = time.perf_counter()
        full = accuracy(score, test.inputs, test.labels, ())
        test_times.append(time.perf_counter() - start)
    test_ms = 1000 * min(test_times)
    return {
        "model": kind,
        "M": num_modalities,
        "all": full,
        "one withheld": mean([accuracy(score, test.inputs, test.labels, (m,)) for m in mods]),
        "half withheld": mean([accuracy(score, test.inputs, test.labels, h) for h in halves]),
        "parameters": sum(p.numel() for p in model.parameters()),
        "ms/step": step_ms,
        "test ms": test_ms,
    }


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def markdown(rows: Sequence[Mapping[str, float | int | str]], settings: str, command: str) -> str:
    header = "| M | model | all | one withheld | half withheld | parameters | ms/step | test ms |\n"
    header += "|---" * 8 + "|"
    lines = [
        f"| {r['M']} | {r['model']} | {r['all']:.3f} | {r['one withheld']:.3f} | {r['half withheld']:.3f} "
        f"| {r['parameters']:,} | {r['ms/step']:.1f} | {r['test ms']:.0f} |"
        for r in rows
    ]
    made_by = f"Made by `{command}`."
    return f"# Many modalities\n\n{made_by} {settings}\n\n{header}\n" + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modalities", type=int, nargs="+", default=[3, 4, 6])
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for many_modalities.{md,json}")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for num_modalities in args.modalities:
        kinds = ["late (one)", "late (all subsets)", NULL_TOKEN, PRODUCT_ALL]
        for kind in kinds + [PRODUCT_SAMPLE] * (num_modalities == 6):
            rows.append(run(kind, num_modalities, args.steps, args.n_train, args.seed))
            print(json.dumps(rows[-1]), flush=True)
    settings = (
        f"Synthetic generator, K={K}, d={DIM}, intra={INTRA}, inter={INTER}, noise=1; "
        f"{args.n_train} training examples, {args.steps} Adam steps (lr 3e-3, batch 128), hidden {HIDDEN}, "
        f"seed {args.seed}; test on 4000; one CPU thread. Chance is {1 / K:.2f}. Accuracies with withheld "
        f"modalities are means over each single one and over {HALVES} random halves. ms/step: the median "
        "training step; test ms: scoring the 4000 test examples with all modalities in one batch, the "
        "fastest of three (a shared machine: times are indicative)."
    )
    command = ("OMP_NUM_THREADS=1 python benchmarks/many_modalities.py " + " ".join(sys.argv[1:])).strip()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "many_modalities.md").write_text(markdown(rows, settings, command))
    (args.out / "many_modalities.json").write_text(
        json.dumps({"command": command, "settings": settings, "rows": rows}, indent=2) + "\n"
    )
    print(markdown(rows, settings, command))


if __name__ == "__main__":
    main()
