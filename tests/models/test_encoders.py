"""Encoders: LeNet and GRU as in MultiBench, the fastMRI ResNets and CNN, the question encoder."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from i2m2.data.easy_vqa import PAD
from i2m2.models.encoders import (
    GRUEncoder,
    LeNet,
    PreActResNet18,
    SmallCNN,
    WideResNet,
    parameter_count,
    wide_resnet_20_3,
)
from i2m2.models.encoders.text import QuestionEncoder
from i2m2.models.multitask_head import MultiTaskHead

TASKS, CLASSES = 4, 2


@pytest.mark.parametrize(("side", "additional", "features"), [(28, 3, 48), (112, 5, 192)])
def test_lenet_reduces_the_paper_inputs_to_one_pixel(side, additional, features):
    encoder = LeNet(1, 6, additional)
    assert encoder.out_features == features  # 8c for the image, 32c for the audio
    assert encoder(torch.randn(3, 1, side, side)).shape == (3, features)


def test_lenet_layers_follow_multibench():
    encoder = LeNet(1, 6, 2)
    blocks = list(encoder.blocks)
    assert len(blocks) == 3
    widths = []
    for i, block in enumerate(blocks):
        conv, norm, act, pool = block
        assert isinstance(conv, nn.Conv2d) and conv.bias is None
        assert conv.kernel_size == ((5, 5) if i == 0 else (3, 3))
        assert conv.padding == ((2, 2) if i == 0 else (1, 1))
        assert (
            isinstance(norm, nn.BatchNorm2d) and isinstance(act, nn.ReLU) and isinstance(pool, nn.MaxPool2d)
        )
        widths.append(conv.out_channels)
    assert widths == [6, 12, 24]
    assert blocks[0][0].in_channels == 1


def test_gru_last_state_and_all_steps():
    torch.manual_seed(0)
    x = torch.randn(4, 24, 12)
    last = GRUEncoder(12, 30)
    full = GRUEncoder(12, 30, num_steps=24)
    full.load_state_dict(last.state_dict())
    h_last, h_full = last(x), full(x)
    assert h_last.shape == (4, 30) and last.out_features == 30
    assert h_full.shape == (4, 720) and full.out_features == 720
    # the last step of the flattened sequence is the last hidden state; batch_first is respected
    assert torch.allclose(h_full[:, -30:], h_last, atol=1e-6)
    assert torch.allclose(last(x[:1]), h_last[:1], atol=1e-6)


@pytest.mark.parametrize("shape", [(4, 24, 11), (4, 12), (4, 23, 12)])
def test_gru_rejects_wrong_shapes(shape):
    with pytest.raises(ValueError, match="GRUEncoder: expected"):
        GRUEncoder(12, 30, num_steps=24)(torch.randn(shape))


def test_question_encoder_ignores_padding():
    encoder = QuestionEncoder(30).eval()
    short = torch.tensor([[5, 6, 7, PAD, PAD]])
    longer = torch.cat([short, torch.zeros(1, 10, dtype=torch.int64)], dim=1)
    assert torch.allclose(encoder(short), encoder(longer), atol=1e-6)
    different = torch.tensor([[5, 6, 8, PAD, PAD]])
    assert not torch.allclose(encoder(short), encoder(different))
    # A withheld question is zero-filled: all padding must not fail.
    assert torch.isfinite(encoder(torch.zeros(2, 5, dtype=torch.int64))).all()


@pytest.mark.parametrize(
    ("build", "features"),
    [
        (lambda c: PreActResNet18(c, width=4), 32),
        (lambda c: PreActResNet18(c, width=4, norm="batch"), 32),
        (lambda c: wide_resnet_20_3(c, width=2), 24),
    ],
)
@pytest.mark.parametrize("channels", [1, 2])
def test_encoders_forward_and_backward_on_tiny_inputs(build, features: int, channels: int) -> None:
    encoder = build(channels)
    assert encoder.out_features == features
    model = nn.Sequential(encoder, MultiTaskHead(features, TASKS, CLASSES))
    out = model(torch.randn(2, channels, 16, 16))
    assert out.shape == (2, TASKS, CLASSES)
    out.logsumexp(-1).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_encoder_sizes_and_parameter_counts() -> None:
    assert parameter_count(PreActResNet18(1, num_classes=8)) == 11_169_992  # the paper's width 64
    wrn = wide_resnet_20_3(1, num_classes=8)
    assert [b.conv1.out_channels for b in wrn.blocks] == [48] * 3 + [96] * 3 + [192] * 3
    assert parameter_count(wrn) == sum(p.numel() for p in wrn.parameters()) > 0
    small = PreActResNet18(2, num_classes=3, width=8)
    assert small(torch.randn(1, 2, 20, 20)).shape == (1, 3)
    cnn = SmallCNN(2, width=8)  # the cpu preset's encoder: 4 * width features after a global max-pool
    assert cnn.out_features == 32 and cnn(torch.randn(3, 2, 64, 64)).shape == (3, 32)
    with pytest.raises(ValueError, match="6n \\+ 2"):
        WideResNet(depth=21)
