"""Inter-modality experts: ways to model all modalities jointly."""

from i2m2.models.fusion.early import EarlyFusion
from i2m2.models.fusion.late import LateFusion
from i2m2.models.fusion.low_rank_tensor import LowRankTensorFusion
from i2m2.models.fusion.null_token import NullTokenFusion
from i2m2.models.fusion.subset_product import SubsetProductFusion
from i2m2.models.fusion.tensor import TensorFusion

__all__ = [
    "EarlyFusion",
    "LateFusion",
    "LowRankTensorFusion",
    "NullTokenFusion",
    "SubsetProductFusion",
    "TensorFusion",
]
