"""The I2M2 model: the issue's API example, missing modalities, the prior option, and building from parts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from i2m2.models.expert import Expert, UnimodalExpert
from i2m2.models.fusion import LateFusion
from i2m2.models.i2m2 import I2M2
from i2m2.models.multitask_head import MultiTaskHead

TASKS, CLASSES = 4, 2


M3 = ("m0", "m1", "m2")


def assert_normalized(log_probs: torch.Tensor) -> None:
    assert torch.isfinite(log_probs).all()
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(len(log_probs)))


def product(model: I2M2, batch: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
    """The reference: log_softmax of the sum of the named experts' log_softmax, computed directly."""
    experts = model.named_experts()
    total = torch.stack([torch.log_softmax(experts[n](batch), -1) for n in names]).sum(0)
    return torch.log_softmax(total, -1)


def test_the_issue_api_example_runs_as_written() -> None:
    from i2m2 import I2M2, LateFusion

    x_img, x_aud = torch.randn(4, 3, 8, 8), torch.randn(4, 1, 100)
    image_classifier = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    audio_classifier = nn.Sequential(nn.Flatten(), nn.Linear(100, 10))
    img_enc = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU())
    aud_enc = nn.Sequential(nn.Flatten(), nn.Linear(100, 16), nn.ReLU())
    head = nn.Linear(32, 10)

    model = I2M2(
        experts={"image": image_classifier, "audio": audio_classifier},  # intra-modality experts
        inter=LateFusion(encoders={"image": img_enc, "audio": aud_enc}, head=head),  # inter-modality expert
    )
    log_probs = model({"image": x_img, "audio": x_aud})  # normalized log p(y | all modalities)

    assert log_probs.shape == (4, 10)
    assert_normalized(log_probs)
    assert list(model.experts) == ["image", "audio", "inter"]
    assert model.modalities == ("image", "audio")
    assert model.num_classes is None  # not given: experts must agree, and forward never sets it
    batch = {"image": x_img, "audio": x_aud}
    torch.testing.assert_close(log_probs, product(model, batch, ["image", "audio", "inter"]))


def test_plain_modules_become_unimodal_experts_and_experts_stay_as_they_are() -> None:
    expert = UnimodalExpert("b", nn.Linear(2, 3))
    model = I2M2(experts={"a": nn.Linear(4, 3), "b-expert": expert})
    experts = model.named_experts()
    assert isinstance(experts["a"], UnimodalExpert) and experts["a"].modalities == ("a",)
    assert experts["b-expert"] is expert
    assert model.modalities == ("a", "b")


def test_several_inter_experts_by_name_also_as_module_dict() -> None:
    inter = {
        "ab": LateFusion({"a": nn.Linear(2, 4), "b": nn.Linear(3, 4)}, nn.Linear(8, 5)),
        "bc": LateFusion({"b": nn.Linear(3, 4), "c": nn.Linear(1, 4)}, nn.Linear(8, 5)),
    }
    batch = {"a": torch.randn(3, 2), "b": torch.randn(3, 3), "c": torch.randn(3, 1)}
    for given in (inter, nn.ModuleDict(inter)):
        model = I2M2(inter=given)
        assert list(model.experts) == ["ab", "bc"]
        torch.testing.assert_close(model(batch), product(model, batch, ["ab", "bc"]))


def test_model_construction_errors() -> None:
    with pytest.raises(ValueError, match="at least one expert"):
        I2M2()
    late = LateFusion({"a": nn.Linear(2, 4)}, nn.Linear(4, 3))
    with pytest.raises(ValueError, match="two experts are named 'inter'"):
        I2M2(experts={"inter": nn.Linear(2, 3)}, inter=late)
    with pytest.raises(TypeError, match="inter expert 'x' must be an i2m2 Expert"):
        I2M2(inter={"x": nn.Linear(2, 3)})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="inter must be an i2m2 Expert"):
        I2M2(inter=nn.Linear(2, 3))  # type: ignore[arg-type]


# ---- missing modalities -------------------------------------------------------------------------------


def test_presence_mask_leaves_out_exactly_the_experts_of_absent_modalities(small_method, small_batch) -> None:
    model = small_method("i2m2", "late", M3, all_subsets=True).eval()
    batch = small_batch(M3, size=4)
    present = {
        "m0": torch.tensor([True, True, True, False]),
        "m1": torch.tensor([True, False, True, True]),
        "m2": torch.tensor([True, True, False, False]),
    }
    # Per row, the experts all of whose modalities are present.
    rows = [
        ["m0", "m1", "m2", "inter:m0+m1", "inter:m0+m2", "inter:m1+m2", "inter"],
        ["m0", "m2", "inter:m0+m2"],
        ["m0", "m1", "inter:m0+m1"],
        ["m1"],
    ]
    got = model(batch, present=present)
    assert_normalized(got)
    for i, names in enumerate(rows):
        torch.testing.assert_close(got[i], product(model, batch, names)[i])


def test_absent_rows_may_hold_nan_placeholders(small_method, small_batch) -> None:
    model = small_method("i2m2", "lrtf", M3[:2])
    batch = small_batch(M3[:2], size=4)
    present = {"m1": torch.tensor([True, False, True, False])}
    expected = model(batch, present=present)
    batch["m1"][~present["m1"]] = float("nan")  # e.g. a loader's placeholder for "not recorded"
    got = model(batch, present=present)
    torch.testing.assert_close(got, expected)
    got.sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name}: NaN gradient from an absent row"


def test_missing_key_with_allow_missing_drops_its_experts_everywhere(small_method, small_batch) -> None:
    model = small_method("i2m2", "tensor", M3, all_subsets=True)
    batch = small_batch(["m0", "m2"])
    got = model(batch, allow_missing=True)
    assert_normalized(got)
    torch.testing.assert_close(got, product(model, batch, ["m0", "m2", "inter:m0+m2"]))
    # A presence mask for another modality also allows the key to be missing, with the same result.
    torch.testing.assert_close(model(batch, present={"m0": torch.ones(6, dtype=torch.bool)}), got)


def test_unimodal_expert_alone_when_the_other_modality_is_missing(small_method, small_batch) -> None:
    model = small_method("i2m2", "early", M3[:2])
    batch = small_batch(M3[:2])
    present = {"m0": torch.zeros(6, dtype=torch.bool)}
    torch.testing.assert_close(model(batch, present=present), product(model, batch, ["m1"]))


def test_an_example_with_no_expert_present_gets_the_uniform_distribution(small_method, small_batch) -> None:
    model = small_method("intra", "late", M3[:2])
    batch = small_batch(M3[:2], size=3)
    absent_row0 = torch.tensor([False, True, True])
    got = model(batch, present={"m0": absent_row0, "m1": absent_row0})
    torch.testing.assert_close(got[0], torch.full((3,), 1 / 3).log())
    torch.testing.assert_close(got[1:], product(model, batch, ["m0", "m1"])[1:])


def test_an_example_with_no_expert_present_gets_the_prior(small_method, small_batch) -> None:
    prior = torch.tensor([0.5, 0.3, 0.2])
    model = small_method("i2m2", "late", M3[:2], log_prior=prior.log())
    batch = small_batch(M3[:2], size=2)
    absent_row0 = torch.tensor([False, True])
    got = model(batch, present={"m0": absent_row0, "m1": absent_row0})
    torch.testing.assert_close(got[0].exp(), prior)
    assert_normalized(got)


# ---- the prior correction ----------------------------------------------------------------------------


def test_prior_correction_divides_the_prior_out_k_minus_one_times(small_method, small_batch) -> None:
    prior = torch.tensor([0.5, 0.3, 0.2])
    plain = small_method("i2m2", "late", M3[:2])
    corrected = small_method("i2m2", "late", M3[:2], log_prior=prior.log())
    corrected.load_state_dict(plain.state_dict())
    batch = small_batch(M3[:2])
    # Three experts: p(y|x) ∝ q_0 q_1 q_inter / p(y)^2.
    expected = torch.log_softmax(plain(batch) - 2 * prior.log(), -1)
    torch.testing.assert_close(corrected(batch), expected)


def test_set_prior_from_labels_uses_add_one_smoothed_counts(small_method) -> None:
    model = small_method("intra", "late", M3[:2])
    assert model.log_prior is None
    model.set_prior_from_labels(torch.tensor([0, 0, 0, 1, 2, 2]), 3)
    assert model.log_prior is not None
    torch.testing.assert_close(model.log_prior.exp(), torch.tensor([4.0, 2.0, 3.0]) / 9)


def test_log_prior_is_saved_and_restored_into_a_model_built_without_it(small_method, small_batch) -> None:
    model = small_method("i2m2", "lrtf", M3[:2])
    model.set_prior_from_labels(torch.tensor([0, 1, 1, 2]), 3)
    state = model.state_dict()
    assert "log_prior" in state

    fresh = small_method("i2m2", "lrtf", M3[:2])
    fresh.load_state_dict(state)
    batch = small_batch(M3[:2])
    torch.testing.assert_close(fresh(batch), model(batch))


def test_log_prior_follows_the_model_dtype(small_method, small_batch) -> None:
    model = small_method("i2m2", "late", M3[:2], log_prior=torch.tensor([0.5, 0.3, 0.2]).log())
    model.to(torch.float64)
    assert model.log_prior is not None and model.log_prior.dtype == torch.float64
    out = model({m: x.double() for m, x in small_batch(M3[:2]).items()})
    assert out.dtype == torch.float64


def test_expert_logits_report_each_experts_mask(small_method, small_batch) -> None:
    model = small_method("i2m2", "late", M3[:2])
    present = {"m1": torch.tensor([True, False, True, True, False, True])}
    logits, masks = model.expert_logits(small_batch(M3[:2]), present)
    assert set(logits) == set(masks) == {"m0", "m1", "inter"}
    assert all(z.shape == (6, 3) for z in logits.values())
    assert masks["m0"].all()
    torch.testing.assert_close(masks["m1"], present["m1"])
    torch.testing.assert_close(masks["inter"], present["m1"])


def test_an_expert_subclass_reading_two_modalities() -> None:
    class Difference(Expert):
        """A hand-written inter expert: logits from the difference of two inputs."""

        def __init__(self) -> None:
            super().__init__(("a", "b"))
            self.linear = nn.Linear(2, 3)

        def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return self.linear(batch["a"] - batch["b"])

    model = I2M2(experts={"a": nn.Linear(2, 3)}, inter=Difference())
    batch = {"a": torch.randn(5, 2), "b": torch.randn(5, 2)}
    torch.testing.assert_close(model(batch), product(model, batch, ["a", "inter"]))
    torch.testing.assert_close(model({"a": batch["a"]}, allow_missing=True), product(model, batch, ["a"]))


# ---- multi-task models (one product per fastMRI finding) ------------------------------------------------


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


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_absent_rows_never_reach_present_rows_not_even_through_batch_statistics(mode: str) -> None:
    """With a presence mask, an expert runs on its present rows only: its outputs there equal a batch of
    those rows alone, whatever the absent rows hold (zeros used to shift BatchNorm's batch statistics)."""
    from i2m2 import LateFusion

    def bn_classifier() -> nn.Module:
        return nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 3))

    encoders = {m: nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)) for m in ("a", "b")}
    model = I2M2(
        experts={"a": bn_classifier(), "b": bn_classifier()},
        inter=LateFusion(encoders, nn.Linear(8, 3)),
        num_classes=3,
    )
    getattr(model, mode)()
    x = {"a": torch.randn(8, 4), "b": torch.randn(8, 4) + 3}
    present = {"b": torch.tensor([True] * 5 + [False] * 3)}
    masked, _ = model.expert_logits(x, present=present)
    alone, _ = model.expert_logits({m: v[:5] for m, v in x.items()})
    for name in ("b", "inter"):
        torch.testing.assert_close(masked[name][:5], alone[name])
    x["b"][5:] = 1e3  # what an absent row holds changes nothing
    again, _ = model.expert_logits(x, present=present)
    torch.testing.assert_close(again["b"][:5], masked["b"][:5])
