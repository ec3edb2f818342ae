"""A small CNN for CPU runs of the fastMRI experiment on the phantom: three conv blocks, global max-pool."""

from __future__ import annotations

from torch import Tensor, nn


class SmallCNN(nn.Module):
    """``(batch, in_channels, H, W) -> (batch, 4 * width)`` features.

    Three 3x3 conv -> GroupNorm -> ReLU blocks of ``width``, ``2 width`` and ``4 width`` channels, the
    first two followed by a 2x2 max-pool, then a global max-pool over the map. Max-pooling keeps a small,
    local finding (a few pixels of a 64x64 slice) from being averaged away, which a global mean-pool
    does with little training. Not in the paper: the ``cpu`` preset's stand-in for PreActResNet-18.
    """

    def __init__(self, in_channels: int = 1, width: int = 16) -> None:
        super().__init__()
        widths = (width, 2 * width, 4 * width)
        layers: list[nn.Module] = []
        channels = in_channels
        for i, out in enumerate(widths):
            layers += [
                nn.Conv2d(channels, out, 3, padding=1, bias=False),
                nn.GroupNorm(min(8, out), out),
                nn.ReLU(),
            ]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            channels = out
        self.features = nn.Sequential(*layers)
        self.out_features = widths[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x).amax(dim=(2, 3))
