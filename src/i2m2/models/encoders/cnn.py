"""A small CNN for 64x64 RGB images (easy-VQA): cheap enough to train on two CPU cores."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class SmallCNN(nn.Module):
    """Conv blocks (3x3 conv -> BatchNorm -> ReLU -> 2x2 max-pool), then a linear layer to features.

    The first conv has stride 2: easy-VQA shapes are large and flat-coloured, so 32x32 keeps their
    outline while cutting the cost of every later layer by four. ``64 -> 32`` (stride) then one halving
    per block: with four blocks a 64x64 image ends as a 2x2 map of ``channels[-1]`` features, flattened
    (so where a shape sits is not averaged away) and projected to ``out_features``.

    Args:
        in_channels: input channels (3 for RGB).
        channels: filters of each block.
        out_features: size of the returned feature vector.
        image_size: input side, used to size the last linear layer.
    """

    def __init__(
        self,
        in_channels: int = 3,
        channels: Sequence[int] = (16, 32, 32, 64),
        out_features: int = 64,
        image_size: int = 64,
    ) -> None:
        super().__init__()
        if not channels:
            raise ValueError("SmallCNN needs at least one block")
        blocks: list[nn.Module] = []
        width_in, side = in_channels, image_size
        for i, width in enumerate(channels):
            stride = 2 if i == 0 else 1
            side = (side + stride - 1) // stride // 2
            conv = nn.Conv2d(width_in, width, kernel_size=3, stride=stride, padding=1, bias=False)
            blocks.append(nn.Sequential(conv, nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)))
            width_in = width
        if side < 1:
            raise ValueError(f"SmallCNN: {len(channels)} blocks shrink a {image_size}px image to nothing")
        self.blocks = nn.Sequential(*blocks)
        self.project = nn.Sequential(
            nn.Flatten(1), nn.Linear(width_in * side * side, out_features), nn.ReLU()
        )
        self.image_size = image_size
        self.out_features = out_features

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"SmallCNN: expected (batch, channels, {self.image_size}, {self.image_size}), "
                f"got {tuple(x.shape)}"
            )
        return self.project(self.blocks(x))
