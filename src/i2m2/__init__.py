"""I2M2: jointly modeling inter- and intra-modality dependencies for multimodal classification.

The model code (this package's ``models``) is plain PyTorch; ``i2m2.training`` adapts it to Lightning and
``i2m2.orchestration`` runs the jobs of a comparison. An
experiment (:class:`Experiment`) states modalities, classes, data, expert builders and a :class:`Recipe`
once; :func:`run_experiment` runs its whole comparison. Every public name loads on first use, so
``import i2m2`` stays light.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# Public name -> the module that defines it, imported on first use: ``import i2m2`` (and so the ``i2m2``
# command's start, where Ctrl-C must stay one line) does not import torch or Lightning.
_HOMES = {
    "DataSplits": "i2m2.data.multimodal_dataset",
    "MultimodalDataset": "i2m2.data.multimodal_dataset",
    "SyntheticTask": "i2m2.data.synthetic",
    "Experiment": "i2m2.experiment",
    "Recipe": "i2m2.experiment",
    "StageChanges": "i2m2.experiment",
    "StageConfig": "i2m2.experiment",
    "Expert": "i2m2.models.expert",
    "UnimodalExpert": "i2m2.models.expert",
    "EarlyFusion": "i2m2.models.fusion",
    "LateFusion": "i2m2.models.fusion",
    "LowRankTensorFusion": "i2m2.models.fusion",
    "NullTokenFusion": "i2m2.models.fusion",
    "SubsetProductFusion": "i2m2.models.fusion",
    "TensorFusion": "i2m2.models.fusion",
    "I2M2": "i2m2.models.i2m2",
    "build_method": "i2m2.models.methods",
    "experts_of": "i2m2.models.methods",
    "method_names": "i2m2.models.methods",
    "MLP": "i2m2.models.mlp",
    "product_of_experts": "i2m2.models.product_of_experts",
    "FUSIONS": "i2m2.models.registry",
    "create_fusion": "i2m2.models.registry",
    "InputSpec": "i2m2.models.validation",
    "load_model": "i2m2.inference.loading",
    "Predictor": "i2m2.inference.predictor",
    "run_experiment": "i2m2.orchestration.comparison",
    "RunOptions": "i2m2.orchestration.comparison",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        value = getattr(import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'i2m2' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])


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
    "Predictor",
    "Recipe",
    "RunOptions",
    "StageChanges",
    "StageConfig",
    "SubsetProductFusion",
    "SyntheticTask",
    "TensorFusion",
    "UnimodalExpert",
    "build_method",
    "create_fusion",
    "experts_of",
    "load_model",
    "method_names",
    "product_of_experts",
    "run_experiment",
]
