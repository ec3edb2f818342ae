"""``i2m2 run features --data-dir DIR``: the whole comparison on per-modality feature arrays, no code needed.

The data is ``train.npz`` / ``val.npz`` (optional) / ``test.npz`` with one array per modality plus
``labels`` (see :mod:`i2m2.data.features`); any number of modalities M >= 2. Each unimodal expert is an MLP
on its modality's vector; the inter expert is any fusion of the registry (``--fusion late lrtf ...``).
This is also the route for researchers who extract features with their own pretrained models.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from i2m2.catalog import register_experiment
from i2m2.data.features import feature_layout, load_features
from i2m2.data.multimodal_dataset import DataSplits
from i2m2.errors import UserError
from i2m2.experiment import Experiment, InterBuilder, Recipe, StageConfig
from i2m2.models.expert import Expert
from i2m2.models.mlp import MLP
from i2m2.models.registry import FUSIONS, create_fusion

# Adam with weight decay and early stopping suits MLPs on standardized features of any source; stage 2
# fine-tunes the pretrained experts at a three times lower rate.
PRETRAIN = StageConfig(
    optimizer="adam", lr=1e-3, weight_decay=1e-4, max_epochs=50, batch_size=128, patience=8
)
FINETUNE = StageConfig(
    optimizer="adam", lr=3e-4, weight_decay=1e-4, max_epochs=20, batch_size=128, patience=5
)


@register_experiment("features")
def features(data_dir: Path | None = None, hidden: int = 128, dropout: float = 0.1) -> Experiment:
    """Your own data as per-modality arrays in .npz files: MLP experts, any fusion, any M >= 2.

    Args:
        data_dir: the folder with ``train.npz``, ``test.npz`` and optionally ``val.npz``.
        hidden: width of every expert's hidden layer.
        dropout: dropout after hidden layers of the unimodal experts.
    """
    if data_dir is None:
        raise UserError("experiment 'features' reads files: pass --data-dir DIR with train.npz and test.npz")
    if hidden < 1 or not 0 <= dropout < 1:
        raise UserError(f"--hidden must be >= 1 and --dropout in [0, 1), got {hidden} and {dropout}")
    dims, num_classes = feature_layout(Path(data_dir))
    if len(dims) < 2:
        raise UserError(f"{data_dir}: found one modality {list(dims)}; the comparison needs at least two")

    def load(group: str, folder: Path | None, seed: int) -> DataSplits:
        return load_features(Path(folder or data_dir), seed, num_classes)

    def unimodal(modality: str, classes: int, group: str) -> nn.Module:
        return MLP(dims[modality], [hidden], classes, dropout=dropout)

    def fusion(name: str) -> InterBuilder:
        def build(fused: tuple[str, ...], classes: int, group: str) -> Expert:
            return create_fusion(name, {m: dims[m] for m in fused}, classes, hidden=hidden)

        return build

    return Experiment(
        name="features",
        description=f"per-modality features from {Path(data_dir).name} ({len(dims)} modalities)",
        modalities=tuple(dims),
        num_classes=num_classes,
        load_data=load,
        build_unimodal=unimodal,
        build_inter={name: fusion(name) for name in FUSIONS},
        recipe=Recipe(pretrain=PRETRAIN, finetune=FINETUNE),
        needs_data_dir=True,
        default_fusions=("late",),
        input_dims=dims,  # the logistic row: logistic regression on the concatenated standardized features
    )
