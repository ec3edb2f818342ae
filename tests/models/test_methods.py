"""Every method x every registered fusion x {2, 3} modalities: normalized outputs and gradients everywhere."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from i2m2.models.fusion import LateFusion
from i2m2.models.methods import build_method, experts_of, inter_subsets, method_names
from i2m2.models.mlp import MLP
from i2m2.models.registry import FUSIONS

MODALITIES = {2: ("m0", "m1"), 3: ("m0", "m1", "m2")}


def cases(all_subsets: bool = False) -> list[tuple[str, str, int]]:
    """(method, fusion, modalities); a method without inter experts is built once, not per fusion."""
    out = []
    for n in (3,) if all_subsets else (2, 3):
        for method in method_names(MODALITIES[n]):
            uses_fusion = method in ("inter", "i2m2")
            for fusion in sorted(FUSIONS) if uses_fusion else ["late"]:
                if uses_fusion or not all_subsets:
                    out.append((method, fusion, n))
    return out


def case_id(case: tuple[str, str, int]) -> str:
    method, fusion, n = case
    return f"{method}-{fusion}-M{n}" if method in ("inter", "i2m2") else f"{method}-M{n}"


def assert_normalized(log_probs: torch.Tensor, batch_size: int, num_classes: int) -> None:
    assert log_probs.shape == (batch_size, num_classes)
    assert torch.isfinite(log_probs).all()
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(batch_size))


def test_method_names_list_unimodal_methods_first() -> None:
    assert method_names(["a", "b"]) == ["unimodal:a", "unimodal:b", "intra", "inter", "i2m2"]


def test_experts_of_each_method() -> None:
    mods = ["a", "b", "c"]
    assert experts_of("unimodal:b", mods) == ["b"]
    assert experts_of("intra", mods) == ["a", "b", "c"]
    assert experts_of("inter", mods) == ["inter"]
    assert experts_of("i2m2", mods) == ["a", "b", "c", "inter"]
    assert experts_of("inter", mods, all_subsets=True) == ["inter:a+b", "inter:a+c", "inter:b+c", "inter"]


def test_inter_subsets() -> None:
    assert inter_subsets(["a", "b"], all_subsets=True) == {"inter": ("a", "b")}
    assert inter_subsets(["a", "b", "c", "d"]) == {"inter": ("a", "b", "c", "d")}
    subsets = inter_subsets(["a", "b", "c", "d"], all_subsets=True)
    assert len(subsets) == 6 + 4 + 1  # pairs, triples, the whole set
    assert subsets["inter:b+c+d"] == ("b", "c", "d") and subsets["inter"] == ("a", "b", "c", "d")


@pytest.mark.parametrize("case", cases(), ids=case_id)
def test_every_method_and_fusion_is_normalized(case: tuple[str, str, int], small_method, small_batch) -> None:
    method, fusion, n = case
    model = small_method(method, fusion, MODALITIES[n])
    assert list(model.experts) == experts_of(method, MODALITIES[n])
    assert_normalized(model(small_batch(MODALITIES[n], size=5)), 5, model.num_classes)


@pytest.mark.parametrize("case", cases(all_subsets=True), ids=case_id)
def test_all_subsets_with_three_modalities(case: tuple[str, str, int], small_method, small_batch) -> None:
    method, fusion, _ = case
    model = small_method(method, fusion, MODALITIES[3], all_subsets=True)
    inter: dict[str, tuple[str, ...]] = {
        "inter:m0+m1": ("m0", "m1"),
        "inter:m0+m2": ("m0", "m2"),
        "inter:m1+m2": ("m1", "m2"),
    }
    inter["inter"] = ("m0", "m1", "m2")
    expected = {**inter} if method == "inter" else {"m0": ("m0",), "m1": ("m1",), "m2": ("m2",), **inter}
    assert {name: e.modalities for name, e in model.named_experts().items()} == expected
    assert_normalized(model(small_batch(MODALITIES[3], size=5)), 5, model.num_classes)


GRADIENT_CASES = [(*c, False) for c in cases()] + [(*c, True) for c in cases(all_subsets=True)]


@pytest.mark.parametrize(
    "case", GRADIENT_CASES, ids=lambda c: case_id(c[:3]) + ("-all-subsets" if c[3] else "")
)
def test_gradients_reach_every_parameter(case: tuple[str, str, int, bool], small_method, small_batch) -> None:
    method, fusion, n, all_subsets = case
    model = small_method(method, fusion, MODALITIES[n], all_subsets=all_subsets)
    log_probs = model(small_batch(MODALITIES[n], size=16))
    F.nll_loss(log_probs, torch.randint(model.num_classes, (16,))).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


def test_unimodal_method_reads_only_its_modality(small_method, small_batch) -> None:
    model = small_method("unimodal:m1", "late", MODALITIES[3])
    assert model.modalities == ("m1",)
    batch = small_batch(["m1"], size=4)  # the other modalities are not needed
    expert = model.named_experts()["m1"]
    torch.testing.assert_close(model(batch), torch.log_softmax(expert(batch), -1))


def test_i2m2_is_the_product_of_the_intra_and_inter_experts(small_method, small_batch) -> None:
    model = small_method("i2m2", "lrtf", MODALITIES[2])
    batch = small_batch(MODALITIES[2])
    logits, _ = model.expert_logits(batch)
    assert list(logits) == ["m0", "m1", "inter"]
    total = torch.stack([torch.log_softmax(z, -1) for z in logits.values()]).sum(0)
    torch.testing.assert_close(model(batch), torch.log_softmax(total, -1))


def test_build_method_passes_model_options(small_method) -> None:
    log_prior = torch.tensor([0.5, 0.3, 0.2]).log()
    model = small_method("intra", "late", MODALITIES[2], log_prior=log_prior)
    assert model.num_classes == 3
    assert model.log_prior is not None
    torch.testing.assert_close(model.log_prior, log_prior)


def test_build_method_rejects_unknown_and_too_few_modalities() -> None:
    def unimodal(m: str) -> MLP:
        return MLP(2, [], 2)

    def inter(mods: tuple[str, ...]) -> LateFusion:
        return LateFusion({m: MLP(2, [], 2) for m in mods}, MLP(4, [], 2))

    with pytest.raises(ValueError, match=r"unknown method 'late'.*'intra'"):
        build_method("late", ["a", "b"], unimodal, inter)
    with pytest.raises(ValueError, match=r"unknown modality 'c' in method 'unimodal:c'"):
        build_method("unimodal:c", ["a", "b"], unimodal, inter)
    with pytest.raises(ValueError, match=r"method 'i2m2' needs at least two modalities"):
        build_method("i2m2", ["a"], unimodal, inter)
    assert list(build_method("unimodal:a", ["a"], unimodal, inter).experts) == ["a"]
