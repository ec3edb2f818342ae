"""A hand-made run folder in the format of ``i2m2 run`` whose every analysis answer is known."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from i2m2.runs.predictions import Predictions, predictions_path, save_predictions

C = 3
LABELS = np.array([0, 1, 2, 0, 1, 2])
EXAMPLE_GROUPS = np.array([0, 0, 1, 1, 2, 2])
UNIFORM = np.full((len(LABELS), C), math.log(1 / C))
# H([0.5, 0.25, 0.25]) = 1.5 ln 2: both the test labels' entropy and that of a "half-sure" prediction.
H_HALF = 1.5 * math.log(2)


def half_sure(predicted: list[int]) -> np.ndarray:
    """Log-probabilities putting 0.5 on each predicted class and 0.25 on the two others."""
    probs = np.full((len(predicted), C), 0.25)
    probs[np.arange(len(predicted)), predicted] = 0.5
    return np.log(probs)


# Predicted classes, chosen so that every count below is known (labels 0 1 2 0 1 2).
STAGE1_PREDS = {
    "unimodal:a": [0, 0, 0, 1, 1, 1],  # right on 0 and 4
    "unimodal:b": [1, 1, 0, 1, 0, 0],  # right on 1
    "inter": [1, 0, 1, 1, 0, 2],  # right on 5 -> every stage-1 model wrong on 2 and 3
}
I2M2_PREDS = {0: [0, 0, 2, 0, 1, 0], 1: [0, 1, 2, 0, 1, 2]}  # seed 0 right on 0 2 3 4; seed 1 on all


def write_run(
    root: Path, seeds: tuple[int, ...] = (0, 1), groups: tuple[str, ...] = ("",), predictions: bool = True
) -> Path:
    """A run folder in exactly the format of ``i2m2 run``: results.json plus predictions/*.npz."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    methods = ["unimodal:a", "unimodal:b", "intra", "inter", "i2m2"]
    for group in groups:
        for method in methods:
            accs = []
            for seed in seeds:
                p = make_predictions(method, seed)
                accs.append(float((p.log_probs.argmax(1) == p.labels).mean()))
                if predictions:
                    save_predictions(predictions_path(root, group, method, seed), p)
            metric = {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "per_seed": accs}
            rows.append({"method": method, "group": group, "metrics": {"acc": metric}})
    config = {
        "modalities": ["a", "b"],
        "num_classes": C,
        "groups": list(groups),
        "group_names": ["g0", "g1", "g2"],
        "seeds": list(seeds),
        "methods": methods,
        "monitor": "acc",
    }
    results = {"experiment": "handmade", "rows": rows, "config": config, "versions": {"i2m2": "test"}}
    (root / "results.json").write_text(json.dumps(results))
    return root


def make_predictions(method: str, seed: int) -> Predictions:
    if method in STAGE1_PREDS:
        return Predictions(
            LABELS, half_sure(STAGE1_PREDS[method]), {method.split(":")[-1]: half_sure(STAGE1_PREDS[method])}
        )
    product = half_sure(I2M2_PREDS[seed])
    withheld = {
        "a": half_sure([1, 1, 2, 0, 0, 0]),  # without a: right on 2 and 3 -> 1/2
        "b": half_sure(list(LABELS)),  # without b: all right
    }
    if method == "intra":
        experts = {"a": half_sure(STAGE1_PREDS["unimodal:a"]), "b": UNIFORM}
        return Predictions(LABELS, half_sure(list(LABELS)), experts, withheld, EXAMPLE_GROUPS)
    # I2M2's fine-tuned experts: a is always right, b and inter are uniform (argmax picks class 0).
    experts = {"a": half_sure(list(LABELS)), "b": UNIFORM, "inter": UNIFORM}
    return Predictions(LABELS, product, experts, withheld, EXAMPLE_GROUPS)


def listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}
