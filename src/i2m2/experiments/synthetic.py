"""The demo: the paper's generative process in three regimes where different dependencies carry the label.

* ``intra-dominant``: each modality predicts the label on its own; there is no cross-modal code.
* ``inter-dominant``: each modality alone is nearly at chance; the label lives in the modalities' joint code.
* ``both``: each modality says something, and their combination says more.

The thesis to see in the table: inter-modality modeling wins the second regime, intra-modality modeling the
first, and I2M2 is at or near the best in all three without being told which regime it is in.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from i2m2.catalog import register_experiment
from i2m2.data.multimodal_dataset import DataSplits
from i2m2.data.synthetic import SyntheticTask
from i2m2.errors import UserError
from i2m2.experiment import Experiment, Recipe, StageConfig
from i2m2.models.expert import Expert
from i2m2.models.mlp import MLP
from i2m2.models.registry import create_fusion

# (intra, inter) strength per regime; noise is 1.
REGIMES: dict[str, tuple[float, float]] = {
    "intra-dominant": (1.0, 0.0),
    "inter-dominant": (0.3, 3.0),
    "both": (0.9, 2.6),
}


@register_experiment("synthetic")
def synthetic(
    num_classes: int = 4,
    num_modalities: int = 2,
    dim: int = 16,
    hidden: int = 64,
    n_train: int = 800,
    n_val: int = 500,
    n_test: int = 4000,
    regimes: list[str] | None = None,
) -> Experiment:
    """The demo: the paper's generative process (Eq. 1) in three regimes (intra, inter, both).

    Args:
        num_classes: K.
        num_modalities: M (modalities m0, m1, ...).
        dim: size of each modality's vector.
        hidden: width of every MLP.
        n_train: training examples per seed.
        n_val: validation examples per seed.
        n_test: test examples per seed.
        regimes: some of ``intra-dominant``, ``inter-dominant``, ``both`` (default: all three).
    """
    chosen = tuple(regimes or REGIMES)
    unknown = [r for r in chosen if r not in REGIMES]
    if unknown:
        raise UserError(f"--regimes: unknown regime(s) {unknown}; expected some of {list(REGIMES)}")
    return generator_experiment(
        "synthetic",
        "Synthetic data from the paper's generative process (Eq. 1) in three regimes",
        {name: REGIMES[name] for name in chosen},
        num_classes,
        num_modalities,
        dim,
        hidden,
        (n_train, n_val, n_test),
    )


def generator_experiment(
    name: str,
    description: str,
    strengths: dict[str, tuple[float, float]],
    num_classes: int,
    num_modalities: int,
    dim: int,
    hidden: int,
    sizes: tuple[int, int, int],
) -> Experiment:
    """One group per (intra, inter) strength pair of the generator, with the demo's experts and recipe.

    Shared by the demo's three regimes and the sweep's grid, so both always train the same way.
    """
    for option, n in zip(("n_train", "n_val", "n_test"), sizes, strict=True):
        if n < 1:
            raise UserError(f"--{option.replace('_', '-')}: expected an integer >= 1, got {n}")
    modalities = tuple(f"m{i}" for i in range(num_modalities))

    def load(group: str, data_dir: Path | None, seed: int) -> DataSplits:
        intra, inter = strengths[group]
        task = SyntheticTask(num_classes, num_modalities, dim, intra=intra, inter=inter, noise=1.0, seed=0)
        return task.splits(*sizes, seed=seed)

    def unimodal(modality: str, classes: int, group: str) -> nn.Module:
        return MLP(dim, [hidden], classes)

    def late_fusion(fused: tuple[str, ...], classes: int, group: str) -> Expert:
        return create_fusion("late", dict.fromkeys(fused, dim), classes, hidden=hidden)

    return Experiment(
        name=name,
        description=description,
        simulated=True,
        modalities=modalities,
        num_classes=num_classes,
        load_data=load,
        build_unimodal=unimodal,
        build_inter={"lf": late_fusion},
        recipe=Recipe(
            pretrain=StageConfig(
                optimizer="adam", lr=3e-3, weight_decay=1e-4, max_epochs=30, batch_size=128, patience=6
            ),
            finetune=StageConfig(
                optimizer="adam", lr=1e-3, weight_decay=1e-4, max_epochs=15, batch_size=128, patience=4
            ),
        ),
        groups=tuple(strengths),
    )
