"""Feature encoders of the paper's configurations: ``x -> (batch, out_features)``."""

from i2m2.models.encoders.gru import GRUEncoder
from i2m2.models.encoders.lenet import LeNet

__all__ = ["GRUEncoder", "LeNet"]
