"""Multi-task product of experts (one product per fastMRI finding) and the fastMRI image encoders."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from i2m2.models.encoders import PreActResNet18, SmallCNN, WideResNet, parameter_count, wide_resnet_20_3
from i2m2.models.expert import Expert
from i2m2.models.i2m2 import I2M2
from i2m2.models.multitask_head import MultiTaskHead
from i2m2.models.product_of_experts import product_of_experts
from i2m2.models.validation import check_logits

TASKS, CLASSES = 4, 2


def test_multitask_product_is_normalized_per_task_and_equals_the_per_task_products() -> None:
    torch.manual_seed(0)
    logits = [torch.randn(5, TASKS, CLASSES, dtype=torch.float64) * 3 for _ in range(3)]
    present = [
        torch.tensor([True, True, False, True, False]),
        torch.ones(5, dtype=torch.bool),
        torch.tensor([False, True, True, True, False]),
    ]
    log_prior = torch.log_softmax(torch.randn(TASKS, CLASSES, dtype=torch.float64), -1)
    joint = product_of_experts(logits, present, log_prior)
    assert joint.shape == (5, TASKS, CLASSES)
    torch.testing.assert_close(joint.exp().sum(-1), torch.ones(5, TASKS, dtype=torch.float64))
    for t in range(TASKS):
        alone = product_of_experts([z[:, t] for z in logits], present, log_prior[t])
        torch.testing.assert_close(joint[:, t], alone)


def test_multitask_product_by_hand() -> None:
    # Task 0: experts say (.8, .2) and (.5, .5) -> (.8, .2). Task 1: (.5, .5) and (.25, .75) -> (.25, .75).
    a = torch.tensor([[[0.8, 0.2], [0.5, 0.5]]]).log()
    b = torch.tensor([[[0.5, 0.5], [0.25, 0.75]]]).log() + 7.0  # a shift the softmax must remove
    got = product_of_experts([a, b]).exp()
    torch.testing.assert_close(got, torch.tensor([[[0.8, 0.2], [0.25, 0.75]]]))


def test_multitask_prior_of_the_wrong_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"log_prior: expected shape \(4, 2\)"):
        product_of_experts([torch.zeros(3, TASKS, CLASSES)], log_prior=torch.zeros(CLASSES))


class _Both(Expert):
    """Early fusion of two modalities into multi-task logits (the fastMRI inter expert's shape)."""

    def __init__(self) -> None:
        super().__init__(("magnitude", "phase"))
        self.head = MultiTaskHead(2 * 16, TASKS, CLASSES)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(torch.cat([batch["magnitude"].flatten(1), batch["phase"].flatten(1)], 1))


def _multitask_model(**kwargs: object) -> I2M2:
    unimodal = {
        m: nn.Sequential(nn.Flatten(), MultiTaskHead(16, TASKS, CLASSES)) for m in ("magnitude", "phase")
    }
    return I2M2(experts=unimodal, inter=_Both(), num_tasks=TASKS, **kwargs)  # type: ignore[arg-type]


def test_i2m2_with_tasks_normalizes_each_task_and_leaves_out_absent_modalities() -> None:
    model = _multitask_model()
    batch = {"magnitude": torch.randn(3, 1, 4, 4), "phase": torch.randn(3, 1, 4, 4)}
    out = model(batch)
    assert out.shape == (3, TASKS, CLASSES)
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(3, TASKS))
    logits, _ = model.expert_logits(batch)
    only_magnitude = model(batch, present={"phase": torch.zeros(3, dtype=torch.bool)})
    torch.testing.assert_close(only_magnitude, torch.log_softmax(logits["magnitude"], -1))
    out[:, :, 1].sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_i2m2_with_tasks_prior_from_multilabel_targets() -> None:
    model = _multitask_model()
    labels = torch.tensor([[1, 0, 0, 1], [0, 0, 1, 1], [0, 0, 0, 1]])
    model.set_prior_from_labels(labels, CLASSES)
    assert model.log_prior is not None and model.log_prior.shape == (TASKS, CLASSES)
    # add-one smoothing per task: task 0 has one positive of three -> (2/5, 3/5) ... task 3: (1/5, 4/5)
    torch.testing.assert_close(model.log_prior[0].exp(), torch.tensor([3 / 5, 2 / 5]))
    torch.testing.assert_close(model.log_prior[3].exp(), torch.tensor([1 / 5, 4 / 5]))
    batch = {"magnitude": torch.randn(2, 1, 4, 4), "phase": torch.randn(2, 1, 4, 4)}
    torch.testing.assert_close(model(batch).exp().sum(-1), torch.ones(2, TASKS))


def test_single_task_model_still_rejects_3d_logits_and_multitask_rejects_2d() -> None:
    with pytest.raises(ValueError, match=r"expected logits of shape \(5, classes\), got \(5, 4, 2\)"):
        check_logits("a", torch.zeros(5, 4, 2), 5, None)
    with pytest.raises(ValueError, match=r"expected logits of shape \(5, 4, classes\), got \(5, 2\)"):
        check_logits("a", torch.zeros(5, 2), 5, None, num_tasks=4)
    with pytest.raises(ValueError, match=r"expected logits of shape \(5, 4, classes\), got \(5, 3, 2\)"):
        check_logits("a", torch.zeros(5, 3, 2), 5, None, num_tasks=4)
    check_logits("a", torch.zeros(5, 4, 2), 5, 2, num_tasks=4)  # the right shape passes


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
