"""WideResNet-20-3 (Zagoruyko & Komodakis, 2016), the wider baseline of the paper's Figure 4.

Depth ``d`` gives ``(d - 2) / 6`` pre-activation blocks in each of three stages (depth 20: 3 blocks per
stage, the ResNet-20 layout: 18 convs in blocks, the stem and the classifier), with
``width * k, 2 width * k, 4 width * k`` channels (``width=16``, ``k=3``: 48, 96, 192) at strides 1, 2, 2.
"""

from __future__ import annotations

from torch import nn

from i2m2.models.encoders.norm import Norm
from i2m2.models.encoders.preact_resnet import PreActBlock, PreActTrunk


class WideResNet(PreActTrunk):
    """``(batch, in_channels, H, W) -> (batch, num_classes)`` or ``out_features`` features.

    Args:
        in_channels: input channels.
        num_classes: size of the linear head; ``None`` returns the features.
        depth: total depth, ``6 n + 2``.
        widen_factor: ``k``, the channel multiplier.
        width: base channels of the first stage before widening (16 in the original).
        norm: ``"batch"`` (the original) or ``"group"``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int | None = None,
        depth: int = 20,
        widen_factor: int = 3,
        width: int = 16,
        norm: Norm = "batch",
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"WideResNet depth must be 6n + 2 with n >= 1, got {depth}")
        per_stage = (depth - 2) // 6
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        channels = width
        for stage, stride in enumerate((1, 2, 2)):
            out = width * widen_factor * 2**stage
            for i in range(per_stage):
                blocks.append(PreActBlock(channels, out, stride if i == 0 else 1, norm))
                channels = out
        self.blocks = nn.Sequential(*blocks)
        self._finish(channels, norm, num_classes)


def wide_resnet_20_3(in_channels: int = 1, num_classes: int | None = None, width: int = 16) -> WideResNet:
    """WideResNet-20-3 of the paper's Figure 4; a smaller ``width`` keeps the layout and runs on CPU."""
    return WideResNet(in_channels, num_classes, depth=20, widen_factor=3, width=width)
