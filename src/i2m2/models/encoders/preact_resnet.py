"""PreActResNet-18 (He et al., 2016, identity mappings), the fastMRI encoder of the paper and of Madaan et al.

Pre-activation blocks (norm -> ReLU -> conv, twice, plus the shortcut), four stages of two blocks with
``width, 2 width, 4 width, 8 width`` channels, strides 1, 2, 2, 2, after a 3x3 stem; global average
pooling gives ``8 * width`` features. GroupNorm by default, as in the authors' code. ``width=64`` is the
paper's network (about 11.2M parameters); a small ``width`` (e.g. 8) trains on CPU.
"""

from __future__ import annotations

from torch import Tensor, nn

from i2m2.models.encoders.norm import Norm, norm2d


class PreActBlock(nn.Module):
    """``x + conv(relu(norm(conv(relu(norm(x))))))``; a 1x1 conv shortcut when the shape changes."""

    def __init__(self, in_channels: int, channels: int, stride: int, norm: Norm) -> None:
        super().__init__()
        self.norm1 = norm2d(norm, in_channels)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.norm2 = norm2d(norm, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.norm1(x).relu()
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(self.norm2(out).relu())
        return out + shortcut


class PreActTrunk(nn.Module):
    """What every pre-activation ResNet here shares: stem -> blocks -> norm -> ReLU -> global average pool,
    then an optional linear head (``None``: the pooled features, ``out_features`` of them)."""

    stem: nn.Module
    blocks: nn.Sequential

    def _finish(self, channels: int, norm: Norm, num_classes: int | None) -> None:
        self.norm = norm2d(norm, channels)
        self.out_features = channels
        self.head = None if num_classes is None else nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        features = self.norm(self.blocks(self.stem(x))).relu().mean(dim=(2, 3))
        return features if self.head is None else self.head(features)


class PreActResNet18(PreActTrunk):
    """PreActResNet-18: ``(batch, in_channels, H, W) -> (batch, num_classes)`` or features.

    Args:
        in_channels: input channels (1 for one modality, 2 for early fusion of magnitude and phase).
        num_classes: size of the linear head; ``None`` returns the ``out_features = 8 * width`` features.
        width: channels of the first stage (64 in the paper).
        norm: ``"group"`` (the authors') or ``"batch"``.
    """

    def __init__(
        self, in_channels: int = 1, num_classes: int | None = None, width: int = 64, norm: Norm = "group"
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        channels = width
        for stage, stride in enumerate((1, 2, 2, 2)):
            out = width * 2**stage
            blocks += [PreActBlock(channels, out, stride, norm), PreActBlock(out, out, 1, norm)]
            channels = out
        self.blocks = nn.Sequential(*blocks)
        self._finish(channels, norm, num_classes)
