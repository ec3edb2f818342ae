"""Why intra weakens with the budget: the stage-1 experts' plain product and their confidence when wrong.

Reads the saved test predictions of AV-MNIST run folders (``i2m2 run avmnist``) and prints, per run folder
and seed: the accuracy of the plain product of the stage-1 image and audio experts (before any fine-tuning),
intra's accuracy after fine-tuning, and for each expert its mean top probability on the examples it gets
wrong and its test NLL. Run it on folders trained with different budgets (docs/avmnist.md):

    python benchmarks/avmnist_expert_confidence.py /tmp/presets6/paper /tmp/presets/paper-s1 \\
        /tmp/presets/paper-s2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from i2m2.runs.predictions import load_predictions


def seed_stats(folder: Path, seed: int) -> dict[str, float]:
    def load(method: str):
        return load_predictions(folder / "predictions" / f"all__{method}__seed{seed}.npz")

    image, audio, intra = load("unimodal-image"), load("unimodal-audio"), load("intra")
    labels = image.labels
    product = image.log_probs + audio.log_probs
    stats = {
        "product_acc": float((product.argmax(1) == labels).mean()),
        "intra_acc": float((intra.log_probs.argmax(1) == labels).mean()),
    }
    for name, log_probs in (("image", image.log_probs), ("audio", audio.log_probs)):
        wrong = log_probs.argmax(1) != labels
        stats[f"{name}_acc"] = float(1 - wrong.mean())
        stats[f"{name}_confidence_when_wrong"] = float(np.exp(log_probs.max(1))[wrong].mean())
        stats[f"{name}_nll"] = float(-log_probs[np.arange(len(labels)), labels].mean())
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="AV-MNIST run folders")
    args = parser.parse_args()
    for folder in args.runs:
        config = json.loads((folder / "results.json").read_text())["config"]
        epochs = config["max_epochs_override"] or "the recipe's"
        for seed in config["seeds"]:
            stats = seed_stats(folder, seed)
            print(json.dumps({"run": str(folder), "max_epochs": epochs, "seed": seed} | stats))


if __name__ == "__main__":
    main()
