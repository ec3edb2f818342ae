"""Your own experiment in one file: scikit-learn's handwritten digits seen as two views.

Each 8x8 digit is cut into its left and right halves: two "modalities" of 32 pixels. Run it with

    i2m2 run examples/digits_halves.py:digits_halves --seeds 3 --out runs/digits

Every keyword argument of the factory is a flag (``--hidden 64``). Needs ``pip install scikit-learn``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from i2m2 import MLP, DataSplits, Experiment, MultimodalDataset, Recipe, StageConfig, create_fusion


def load_halves(group: str, data_dir: Path | None, seed: int) -> DataSplits:
    """A seeded 60/20/20 split of the 1,797 digits into left and right halves, scaled to 0..1."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32) / 16.0
    labels = torch.tensor(digits.target)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_train, n_val = int(0.6 * len(order)), int(0.2 * len(order))
    parts = order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]

    def split(index: torch.Tensor) -> MultimodalDataset:
        views = {"left": images[index, :, :4].flatten(1), "right": images[index, :, 4:].flatten(1)}
        return MultimodalDataset(views, labels[index])

    return DataSplits(*(split(p) for p in parts), num_classes=10)


def digits_halves(hidden: int = 32) -> Experiment:
    """Digits as left and right halves: MLP experts, late fusion, the two-stage recipe."""
    return Experiment(
        name="digits-halves",
        description="scikit-learn digits, left and right halves as two views",
        modalities=("left", "right"),
        num_classes=10,
        load_data=load_halves,
        build_unimodal=lambda modality, classes, group: MLP(32, [hidden], classes),
        build_inter={
            "late": lambda modalities, classes, group: create_fusion(
                "late", dict.fromkeys(modalities, 32), classes, hidden=hidden
            )
        },
        recipe=Recipe(
            pretrain=StageConfig(optimizer="adam", lr=3e-3, max_epochs=40, batch_size=64, patience=6),
            finetune=StageConfig(optimizer="adam", lr=1e-3, max_epochs=15, batch_size=64, patience=4),
        ),
        input_dims={"left": 32, "right": 32},  # flat vectors: adds the logistic row, the plain baseline
    )
