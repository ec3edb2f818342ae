"""Inter-modality experts: the registry, the math of each fusion, and LRTF's factors being real parameters."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from i2m2.models import registry
from i2m2.models.expert import Expert
from i2m2.models.fusion import EarlyFusion, LateFusion, LowRankTensorFusion, NullTokenFusion, TensorFusion
from i2m2.models.fusion.tensor import tensor_fusion_dim
from i2m2.models.mlp import MLP
from i2m2.models.registry import FUSIONS, create_fusion, register_fusion

DIMS = {"m0": 5, "m1": 3, "m2": 4}


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
@pytest.mark.parametrize("num_modalities", [2, 3])
def test_every_registered_fusion_is_an_expert_over_its_modalities(fusion: str, num_modalities: int) -> None:
    dims = dict(list(DIMS.items())[:num_modalities])
    expert = create_fusion(fusion, dims, num_classes=4, hidden=8)
    assert isinstance(expert, Expert)
    assert expert.modalities == tuple(dims)
    logits = expert({m: torch.randn(6, d) for m, d in dims.items()})
    assert logits.shape == (6, 4)
    assert torch.isfinite(logits).all()


def test_registry_holds_the_four_fusions_of_the_issue() -> None:
    assert {"early", "late", "lrtf", "tensor"} <= set(FUSIONS)


def test_register_fusion_adds_a_selectable_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "FUSIONS", dict(FUSIONS))

    @register_fusion("sum-of-linear")
    def _builder(input_dims: dict[str, int], num_classes: int, hidden: int = 64) -> Expert:
        return LateFusion({m: nn.Linear(d, num_classes) for m, d in input_dims.items()}, nn.Identity())

    expert = create_fusion("sum-of-linear", {"a": 2, "b": 3}, num_classes=5)
    assert expert.modalities == ("a", "b")
    assert expert({"a": torch.randn(2, 2), "b": torch.randn(2, 3)}).shape == (2, 10)
    assert "sum-of-linear" not in FUSIONS  # the real registry is untouched


def test_unknown_fusion_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown fusion 'nope'.*early"):
        create_fusion("nope", DIMS, num_classes=2)


def test_tensor_fusion_is_the_kronecker_product_of_one_padded_features() -> None:
    identity = {"a": nn.Identity(), "b": nn.Identity(), "c": nn.Identity()}
    fusion = TensorFusion(identity, nn.Identity(), normalize=False)
    a, b, c = torch.randn(2, 3), torch.randn(2, 2), torch.randn(2, 4)
    got = fusion({"a": a, "b": b, "c": c}).numpy()
    scaled = TensorFusion(identity, nn.Identity())({"a": a, "b": b, "c": c}).numpy()  # unit-RMS features
    for i in range(2):
        pad = [np.append(x[i].numpy(), 1.0) for x in (a, b, c)]
        np.testing.assert_allclose(got[i], np.kron(np.kron(pad[0], pad[1]), pad[2]), rtol=1e-6)
        pad = [np.append(x[i].numpy() / np.sqrt(np.mean(x[i].numpy() ** 2)), 1.0) for x in (a, b, c)]
        np.testing.assert_allclose(scaled[i], np.kron(np.kron(pad[0], pad[1]), pad[2]), rtol=1e-4)
    np.testing.assert_allclose(np.mean(scaled**2, axis=1), 1.0, rtol=1e-4)  # unit mean square for any M
    assert got.shape[1] == tensor_fusion_dim({"a": 3, "b": 2, "c": 4}) == 4 * 3 * 5


def test_low_rank_tensor_fusion_equals_full_tensor_fusion_with_the_reconstructed_weight() -> None:
    # Liu et al. (2018): the rank-r weight W = sum_r w_r (W_a^r ⊗ W_b^r) applied to [a;1] ⊗ [b;1].
    lrtf = LowRankTensorFusion(
        {"a": nn.Identity(), "b": nn.Identity()}, {"a": 3, "b": 2}, 4, 5, nn.Identity(), normalize=False
    )
    lrtf.double()
    nn.init.normal_(lrtf.bias)
    a, b = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    got = lrtf({"a": a, "b": b}).detach().numpy()
    fa, fb = lrtf.factors["a"].detach().numpy(), lrtf.factors["b"].detach().numpy()  # (r, d+1, out)
    w = lrtf.rank_weights.detach().numpy()[0]
    full = np.einsum("r,rio,rjo->ijo", w, fa, fb)  # (d_a+1, d_b+1, out)
    pa = np.concatenate([a.numpy(), np.ones((6, 1))], 1)
    pb = np.concatenate([b.numpy(), np.ones((6, 1))], 1)
    expected = np.einsum("bi,bj,ijo->bo", pa, pb, full) + lrtf.bias.detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def _lrtf() -> LowRankTensorFusion:
    encoders = {"a": MLP(4, [], 3), "b": MLP(2, [], 3)}
    return LowRankTensorFusion(encoders, {"a": 3, "b": 3}, rank=2, output_dim=5, head=MLP(5, [], 3))


def test_low_rank_tensor_fusion_factors_receive_gradients_and_train() -> None:
    fusion = _lrtf()
    before = copy.deepcopy(fusion.state_dict())
    trained = {"factors.a": fusion.factors["a"], "factors.b": fusion.factors["b"]}
    trained |= {"rank_weights": fusion.rank_weights, "bias": fusion.bias}
    parameters = {id(p) for p in fusion.parameters()}
    assert all(id(p) in parameters for p in trained.values()), "every factor is seen by the optimizer"

    optimizer = torch.optim.SGD(fusion.parameters(), lr=0.1)
    batch = {"a": torch.randn(8, 4), "b": torch.randn(8, 2)}
    loss = nn.functional.cross_entropy(fusion(batch), torch.randint(3, (8,)))
    loss.backward()
    for name, p in trained.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} got no gradient"
    optimizer.step()
    for name, p in trained.items():
        assert not torch.equal(p.detach(), before[name]), f"{name} did not change after a step"


def test_low_rank_tensor_fusion_factors_are_saved_and_move_with_the_module() -> None:
    fusion = _lrtf()
    state = fusion.state_dict()
    assert {"factors.a", "factors.b", "rank_weights", "bias"} <= set(state)
    assert state["factors.a"].shape == (2, 4, 5)  # (rank, d + 1, output_dim)

    restored = _lrtf()
    restored.load_state_dict(state)
    batch = {"a": torch.randn(3, 4), "b": torch.randn(3, 2)}
    torch.testing.assert_close(restored(batch), fusion(batch))

    fusion.to(torch.float64)  # a stand-in for .to(device): every factor must follow
    assert all(p.dtype == torch.float64 for p in fusion.factors.values())
    assert fusion.rank_weights.dtype == fusion.bias.dtype == torch.float64
    out = fusion({m: x.double() for m, x in batch.items()})
    assert out.dtype == torch.float64


def test_low_rank_tensor_fusion_rejects_a_missing_feature_size_and_zero_rank() -> None:
    with pytest.raises(ValueError, match=r"feature_dims lacks the modalities \['b'\]"):
        LowRankTensorFusion({"a": nn.Identity(), "b": nn.Identity()}, {"a": 2}, 2, 3, nn.Identity())
    with pytest.raises(ValueError, match="rank >= 1"):
        LowRankTensorFusion({"a": nn.Identity()}, {"a": 2}, 0, 3, nn.Identity())


def test_late_fusion_concatenates_encoder_features_in_modality_order() -> None:
    fusion = LateFusion({"b": nn.Identity(), "a": nn.Identity()}, nn.Identity())
    a, b = torch.randn(2, 3), torch.randn(2, 2)
    torch.testing.assert_close(fusion({"a": a, "b": b}), torch.cat([b, a], 1))


def test_early_fusion_flattens_and_joins_inputs() -> None:
    fusion = EarlyFusion(["a", "b"], nn.Identity(), flatten=True)
    a, b = torch.randn(2, 2, 3), torch.randn(2, 4)
    torch.testing.assert_close(fusion({"a": a, "b": b}), torch.cat([a.flatten(1), b], 1))


@pytest.mark.parametrize("dim", [1, -3])
def test_early_fusion_joins_images_as_channels(dim: int) -> None:
    fusion = EarlyFusion(["mag", "phase"], nn.Identity(), dim=dim)
    mag, phase = torch.randn(2, 1, 4, 5), torch.randn(2, 2, 4, 5)
    torch.testing.assert_close(fusion({"mag": mag, "phase": phase}), torch.cat([mag, phase], 1))


@pytest.mark.parametrize("dim", [-1, 3])
def test_early_fusion_joins_along_the_last_axis(dim: int) -> None:
    fusion = EarlyFusion(["a", "b"], nn.Identity(), dim=dim)
    a, b = torch.randn(2, 1, 4, 5), torch.randn(2, 1, 4, 2)
    torch.testing.assert_close(fusion({"a": a, "b": b}), torch.cat([a, b], -1))


def test_early_fusion_names_the_mismatched_shapes() -> None:
    fusion = EarlyFusion(["mag", "phase"], nn.Identity(), dim=1)
    with pytest.raises(ValueError, match=r"every other axis must match.*'mag': \(2, 1, 4, 5\)"):
        fusion({"mag": torch.randn(2, 1, 4, 5), "phase": torch.randn(2, 1, 4, 6)})


def test_create_fusion_passes_each_fusions_own_options() -> None:
    lrtf = create_fusion("lrtf", DIMS, num_classes=4, rank=4, output_dim=6, feature_dim=5, hidden=8)
    assert isinstance(lrtf, LowRankTensorFusion)
    assert lrtf.factors["m0"].shape == (4, 5 + 1, 6)
    tensor = create_fusion("tensor", DIMS, num_classes=4, feature_dim=2, hidden=8)
    assert isinstance(tensor, TensorFusion)
    assert tensor({m: torch.randn(2, d) for m, d in DIMS.items()}).shape == (2, 4)
    assert first_linear(tensor.head).in_features == tensor_fusion_dim(dict.fromkeys(DIMS, 2)) == 27
    late = create_fusion("late", DIMS, num_classes=4, hidden=8, feature_dim=3)
    assert isinstance(late, LateFusion) and first_linear(late.head).in_features == 3 * 3
    null = create_fusion("null-token", DIMS, num_classes=4, subset_prob=0.25, min_modalities=2)
    assert isinstance(null, NullTokenFusion) and (null.subset_prob, null.min_modalities) == (0.25, 2)
    early = create_fusion("early", DIMS, num_classes=4, hidden=8, layers=3)
    assert isinstance(early, EarlyFusion)
    assert sum(isinstance(layer, nn.Linear) for layer in early.network.modules()) == 4


def first_linear(module: nn.Module) -> nn.Linear:
    return next(layer for layer in module.modules() if isinstance(layer, nn.Linear))


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_unknown_option_names_the_fusion_and_its_options(fusion: str) -> None:
    with pytest.raises(TypeError, match=rf"fusion '{fusion}' has no option\(s\) \['rnak'\].*hidden=64"):
        create_fusion(fusion, DIMS, num_classes=4, rnak=3)


def test_tensor_fusion_warns_above_its_parameter_budget_and_names_the_feature_size() -> None:
    dims = {f"m{i}": 4 for i in range(6)}
    message = (
        r"6 modalities has 250,972 parameters.*\(create_fusion\('tensor', ..., feature_dim=3\) has 66,406;"
    )
    with pytest.warns(UserWarning, match=message):
        big = create_fusion("tensor", dims, num_classes=4, hidden=16, max_parameters=100_000)
    assert sum(p.numel() for p in big.parameters()) == 250_972
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small = create_fusion("tensor", dims, num_classes=4, hidden=16, feature_dim=3, max_parameters=100_000)
    assert sum(p.numel() for p in small.parameters()) == 66_406


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_a_float_input_of_another_dtype_says_how_to_fix_it(fusion: str) -> None:
    expert = create_fusion(fusion, DIMS, num_classes=4, hidden=8)
    batch = {m: torch.randn(2, d) for m, d in DIMS.items()}
    batch["m1"] = batch["m1"].double()
    message = r"modality 'm1': expected dtype torch.float32, got torch.float64; convert with x.float\(\)"
    with pytest.raises(ValueError, match=message):
        expert(batch)
    expert.double()
    with pytest.raises(
        ValueError, match=r"modality 'm0': .* got torch.float32; convert with x.to\(torch.float64\)"
    ):
        expert(batch)
