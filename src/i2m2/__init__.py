"""I2M2: jointly modeling inter- and intra-modality dependencies for multimodal classification.

The model code (this package's ``models``) is plain PyTorch; ``i2m2.training`` adapts it to Lightning and
``i2m2.orchestration`` runs the jobs of a comparison. An
experiment (:class:`Experiment`) states modalities, classes, data, expert builders and a :class:`Recipe`
once; :func:`run_experiment` runs its whole comparison. ``run_experiment`` and ``RunOptions`` import
Lightning, so they load on first use and ``import i2m2`` stays light.
"""

from typing import Any

from i2m2.data.multimodal_dataset import DataSplits, MultimodalDataset
from i2m2.data.synthetic import SyntheticTask
from i2m2.experiment import Experiment, Recipe, StageChanges, StageConfig
from i2m2.models.expert import Expert, UnimodalExpert
from i2m2.models.fusion import EarlyFusion, LateFusion, LowRankTensorFusion, NullTokenFusion, TensorFusion
from i2m2.models.i2m2 import I2M2
from i2m2.models.methods import build_method, experts_of, method_names
from i2m2.models.mlp import MLP
from i2m2.models.product_of_experts import product_of_experts
from i2m2.models.registry import FUSIONS, create_fusion
from i2m2.models.validation import InputSpec

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("run_experiment", "RunOptions"):
        from i2m2.orchestration import comparison

        return getattr(comparison, name)
    raise AttributeError(f"module 'i2m2' has no attribute '{name}'")


__all__ = [
    "FUSIONS",
    "I2M2",
    "MLP",
    "DataSplits",
    "EarlyFusion",
    "Experiment",
    "Expert",
    "InputSpec",
    "LateFusion",
    "LowRankTensorFusion",
    "MultimodalDataset",
    "NullTokenFusion",
    "Recipe",
    "RunOptions",
    "StageChanges",
    "StageConfig",
    "SyntheticTask",
    "TensorFusion",
    "UnimodalExpert",
    "build_method",
    "create_fusion",
    "experts_of",
    "method_names",
    "product_of_experts",
    "run_experiment",
]
