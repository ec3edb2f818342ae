"""Encoders (LeNet, GRU) and the paper's AV-MNIST / MIMIC-III model builders."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from i2m2.experiments.avmnist import avmnist_late_fusion, avmnist_lrtf, avmnist_unimodal_classifier
from i2m2.experiments.mimic import mimic_late_fusion, mimic_unimodal_classifier
from i2m2.models.encoders import GRUEncoder, LeNet
from i2m2.models.fusion import LateFusion, LowRankTensorFusion


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


def _check_trains(model: nn.Module, batch, classes: int) -> None:
    """Logits of the right shape, and a backward pass reaches every parameter."""
    logits = model(batch)
    size = len(next(iter(batch.values()))) if isinstance(batch, dict) else len(batch)
    assert logits.shape == (size, classes)
    logits.logsumexp(1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_avmnist_unimodal_classifiers():
    image, audio = torch.rand(3, 1, 28, 28), torch.rand(3, 1, 112, 112)
    _check_trains(avmnist_unimodal_classifier("image", 10), image, 10)
    _check_trains(avmnist_unimodal_classifier("audio", 10), audio, 10)
    assert avmnist_unimodal_classifier("image", 10)[1][1].in_features == 48
    assert avmnist_unimodal_classifier("audio", 10)[1][1].in_features == 192
    assert avmnist_unimodal_classifier("image", 7)[1][-1].out_features == 7  # classes come from the caller


def test_avmnist_fusions_match_the_paper():
    batch = {"image": torch.rand(3, 1, 28, 28), "audio": torch.rand(3, 1, 112, 112)}
    lf = avmnist_late_fusion(("image", "audio"), 10)
    assert isinstance(lf, LateFusion) and lf.modalities == ("image", "audio")
    assert lf.head[1].in_features == 240 and lf.head[1].out_features == 100
    _check_trains(lf, batch, 10)
    lrtf = avmnist_lrtf(("image", "audio"), 10)
    assert isinstance(lrtf, LowRankTensorFusion)
    assert lrtf.factors["image"].shape == (40, 49, 120)  # rank 40, 48 features + 1, output 120
    assert lrtf.factors["audio"].shape == (40, 193, 120)
    assert lrtf.head[1].in_features == 120
    _check_trains(lrtf, batch, 10)


@pytest.mark.parametrize("classes", [6, 2])
def test_mimic_models(classes):
    static, series = torch.randn(5, 5), torch.randn(5, 24, 12)
    _check_trains(mimic_unimodal_classifier("static", classes), static, classes)
    _check_trains(mimic_unimodal_classifier("timeseries", classes), series, classes)
    lf = mimic_late_fusion(("static", "timeseries"), classes)
    assert lf.head[1].in_features == 730  # 10 static + 24 x 30 GRU states, as MultiBench
    assert lf.head[1].out_features == 40
    _check_trains(lf, {"static": static, "timeseries": series}, classes)


def test_unknown_modalities_are_named():
    with pytest.raises(ValueError, match="unknown AV-MNIST modality 'video'"):
        avmnist_late_fusion(("image", "video"), 10)
    with pytest.raises(ValueError, match="unknown MIMIC modality 'notes'"):
        mimic_unimodal_classifier("notes", 2)
