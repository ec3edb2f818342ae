"""The LeNet-style image encoder of CentralNet/MFAS and MultiBench, used for both AV-MNIST modalities."""

from __future__ import annotations

from torch import Tensor, nn


class LeNet(nn.Module):
    """Conv blocks, each conv (no bias) -> BatchNorm -> ReLU -> 2x2 max-pool; returns flattened features.

    The first conv is 5x5 with ``channels`` filters; each of the ``additional_layers`` 3x3 convs doubles
    the channels. With the paper's inputs every block halves the side until one pixel is left
    (28 -> 14 -> 7 -> 3 -> 1 for ``LeNet(1, c, 3)``, 112 -> ... -> 1 for ``LeNet(1, c, 5)``), so the
    features have ``out_features = channels * 2**additional_layers`` entries (MultiBench squeezes the
    same 1x1 map). Larger inputs give ``out_features * h * w`` flattened features.

    Args:
        in_channels: channels of the input image.
        channels: filters of the first conv (``c`` in the paper's configurations).
        additional_layers: 3x3 conv blocks after the first.
    """

    def __init__(self, in_channels: int, channels: int, additional_layers: int) -> None:
        super().__init__()
        widths = [channels * 2**i for i in range(additional_layers + 1)]
        blocks: list[nn.Module] = []
        for i, width in enumerate(widths):
            conv = (
                nn.Conv2d(in_channels, width, kernel_size=5, padding=2, bias=False)
                if i == 0
                else nn.Conv2d(widths[i - 1], width, kernel_size=3, padding=1, bias=False)
            )
            nn.init.kaiming_uniform_(conv.weight)  # MultiBench's initialization
            blocks.append(nn.Sequential(conv, nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)))
        self.blocks = nn.Sequential(*blocks)
        self.out_features = widths[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x).flatten(1)
