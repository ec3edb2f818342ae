"""Feature encoders of the paper's configurations: ``x -> (batch, out_features)``."""

from i2m2.models.encoders.gru import GRUEncoder
from i2m2.models.encoders.lenet import LeNet
from i2m2.models.encoders.norm import parameter_count
from i2m2.models.encoders.pair import PairEncoder
from i2m2.models.encoders.preact_resnet import PreActResNet18
from i2m2.models.encoders.small_cnn import SmallCNN
from i2m2.models.encoders.wide_resnet import WideResNet, wide_resnet_20_3

__all__ = [
    "GRUEncoder",
    "LeNet",
    "PairEncoder",
    "PreActResNet18",
    "SmallCNN",
    "WideResNet",
    "parameter_count",
    "wide_resnet_20_3",
]
