"""Bad input gives one ValueError that names the modality or expert and says what was expected."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from i2m2.data.multimodal_dataset import DataSplits, MultimodalDataset
from i2m2.data.synthetic import SyntheticTask
from i2m2.models.i2m2 import I2M2
from i2m2.models.validation import InputSpec, check_labels

M2 = ("m0", "m1")


def test_missing_modality_without_a_mask_names_it_and_its_experts(small_method, small_batch) -> None:
    model = small_method("i2m2", "late", M2)
    with pytest.raises(ValueError, match=r"modality 'm1' is missing from the batch.*\['m1', 'inter'\]"):
        model(small_batch(["m0"]))


def test_wrong_shape_against_the_input_spec(small_method, small_batch) -> None:
    model = small_method("i2m2", "late", M2, input_specs={"m0": InputSpec(shape=(5,)), "m1": InputSpec((3,))})
    batch = small_batch(M2)
    batch["m1"] = torch.randn(6, 3, 1)
    with pytest.raises(ValueError, match=r"modality 'm1': expected shape \(batch, 3\), got \(6, 3, 1\)"):
        model(batch)


def test_input_spec_with_a_free_axis() -> None:
    spec = {"tokens": InputSpec(shape=(None,), dtype=torch.long)}
    model = I2M2(experts={"tokens": nn.EmbeddingBag(10, 3, mode="mean")}, input_specs=spec)
    for length in (4, 7):  # any length passes the spec
        assert model({"tokens": torch.randint(10, (2, length))}).shape == (2, 3)
    with pytest.raises(ValueError, match=r"modality 'tokens': expected shape \(batch, \*\), got \(2, 7, 3\)"):
        model({"tokens": torch.zeros(2, 7, 3, dtype=torch.long)})
    with pytest.raises(ValueError, match=r"modality 'tokens': expected dtype torch.int64, got torch.float32"):
        model({"tokens": torch.zeros(2, 7)})


def test_wrong_shape_inside_an_encoder_is_reported_with_the_expert_name(small_method, small_batch) -> None:
    model = small_method("i2m2", "lrtf", M2)
    batch = small_batch(M2)
    batch["m1"] = torch.randn(6, 7)  # the m1 networks expect 3 features
    with pytest.raises(
        ValueError, match=r"expert 'm1' failed on its inputs \{'m1': \(\(6, 7\), 'torch.float32'\)\}"
    ):
        model(batch)


def test_wrong_dtype_against_the_input_spec(small_method, small_batch) -> None:
    model = small_method("intra", "late", M2, input_specs={"m0": InputSpec(dtype=torch.float32)})
    batch = small_batch(M2)
    batch["m0"] = batch["m0"].double()
    with pytest.raises(ValueError, match=r"modality 'm0': expected dtype torch.float32, got torch.float64"):
        model(batch)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_name_the_modality(bad: float, small_method, small_batch) -> None:
    model = small_method("i2m2", "tensor", M2)
    batch = small_batch(M2)
    batch["m1"][2, 1] = bad
    with pytest.raises(ValueError, match="modality 'm1': contains NaN or infinite values"):
        model(batch)
    # The same value in a row marked absent is fine: that row never reaches an expert.
    present = {"m1": torch.arange(6) != 2}
    assert torch.isfinite(model(batch, present=present)).all()


def test_logits_of_the_wrong_number_of_classes_name_the_expert() -> None:
    model = I2M2(experts={"a": nn.Linear(2, 3), "b": nn.Linear(2, 4)}, num_classes=3)
    with pytest.raises(ValueError, match=r"expert 'b': expected logits over 3 classes, got 4"):
        model({"a": torch.randn(5, 2), "b": torch.randn(5, 2)})


def test_experts_disagreeing_on_the_classes_without_num_classes() -> None:
    model = I2M2(experts={"a": nn.Linear(2, 3), "b": nn.Linear(2, 4)})
    with pytest.raises(ValueError, match=r"expert 'b': expected logits over 3 classes, got 4"):
        model({"a": torch.randn(5, 2), "b": torch.randn(5, 2)})


def test_logits_of_the_wrong_shape_name_the_expert() -> None:
    model = I2M2(experts={"a": nn.Identity()})
    with pytest.raises(
        ValueError, match=r"expert 'a': expected logits of shape \(5, classes\), got \(5, 2, 2\)"
    ):
        model({"a": torch.randn(5, 2, 2)})


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (torch.tensor([0, 1, 3]), r"labels: expected values in 0..2, got range 0..3"),
        (torch.tensor([-1, 0]), r"labels: expected values in 0..2, got range -1..0"),
        (torch.tensor([0.0, 1.0]), r"labels: expected an integer tensor, got torch.float32"),
    ],
)
def test_labels_out_of_range(labels: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_labels(labels, 3)
    check_labels(torch.tensor([0, 2, 1]), 3)  # in range: no error


@pytest.mark.parametrize(
    ("mask", "match"),
    [
        (
            torch.ones(6),
            r"presence mask of 'm1': expected a bool tensor of shape \(6,\), got \(\(6,\), torch.float32",
        ),
        (
            torch.ones(5, dtype=torch.bool),
            r"presence mask of 'm1': expected a bool tensor of shape \(6,\), got \(\(5,\)",
        ),
        (torch.ones(6, 1, dtype=torch.bool), r"presence mask of 'm1'.*got \(\(6, 1\)"),
        ([True] * 6, r"presence mask of 'm1'.*got list"),
    ],
)
def test_bad_presence_mask_names_the_modality(mask: object, match: str, small_method, small_batch) -> None:
    model = small_method("i2m2", "late", M2)
    with pytest.raises(ValueError, match=match):
        model(small_batch(M2), present={"m1": mask})


def test_presence_mask_must_be_a_dict(small_method, small_batch) -> None:
    model = small_method("i2m2", "late", M2)
    with pytest.raises(ValueError, match="presence mask must be a dict"):
        model(small_batch(M2), present=torch.ones(6, dtype=torch.bool))


def test_batch_structure_errors(small_method, small_batch) -> None:
    model = small_method("i2m2", "late", M2)
    with pytest.raises(ValueError, match="the batch must be a dict of modality name -> Tensor, got list"):
        model([torch.randn(6, 5), torch.randn(6, 3)])
    with pytest.raises(ValueError, match=r"modalities disagree on the batch size: \{'m0': 6, 'm1': 4\}"):
        model({"m0": torch.randn(6, 5), "m1": torch.randn(4, 3)})
    with pytest.raises(ValueError, match=r"modality 'm1': expected a torch\.Tensor, got list"):
        model({"m0": torch.randn(2, 5), "m1": [[0.0] * 3] * 2})
    with pytest.raises(ValueError, match="no expert can run"):
        model({"other": torch.randn(2, 5)}, allow_missing=True)


def test_log_prior_errors() -> None:
    with pytest.raises(ValueError, match=r"log_prior: expected 3 classes, got 2"):
        I2M2(experts={"a": nn.Linear(2, 3)}, num_classes=3, log_prior=torch.zeros(2))
    with pytest.raises(ValueError, match=r"log_prior: contains NaN or infinite"):
        I2M2(experts={"a": nn.Linear(2, 3)}, log_prior=torch.tensor([0.0, 1.0]).log())
    model = I2M2(experts={"a": nn.Linear(2, 3)}, num_classes=3)
    with pytest.raises(ValueError, match=r"labels: expected values in 0..2, got range 0..5"):
        model.set_prior_from_labels(torch.tensor([0, 5]), 3)
    with pytest.raises(ValueError, match=r"the model has 3 classes, got num_classes=4"):
        model.set_prior_from_labels(torch.tensor([0, 1]), 4)


def test_dataset_errors_name_what_disagrees() -> None:
    with pytest.raises(ValueError, match=r"disagree on the number of examples: \{'a': 3\}, labels 2"):
        MultimodalDataset({"a": torch.randn(3, 2)}, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="labels: expected an integer tensor"):
        MultimodalDataset({"a": torch.randn(2, 2)}, torch.tensor([0.0, 1.0]))
    good = MultimodalDataset({"a": torch.randn(2, 2)}, torch.tensor([0, 1]))
    bad = MultimodalDataset({"a": torch.randn(2, 2)}, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"val labels: expected values in 0..1, got range 0..2"):
        DataSplits(good, bad, good, num_classes=2)


@pytest.mark.parametrize(
    "kwargs",
    [{"num_classes": 1}, {"num_modalities": 1}, {"dim": 0}, {"intra": -1.0}, {"noise": -0.1}],
)
def test_synthetic_task_rejects_invalid_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=">= "):
        SyntheticTask(**kwargs)  # type: ignore[arg-type]
