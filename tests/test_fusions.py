"""Inter-modality experts: the registry, the math of each fusion, and LRTF's factors being real parameters."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from i2m2.models import registry
from i2m2.models.expert import Expert
from i2m2.models.fusion import EarlyFusion, LateFusion, LowRankTensorFusion, TensorFusion
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
    fusion = TensorFusion({"a": nn.Identity(), "b": nn.Identity(), "c": nn.Identity()}, nn.Identity())
    a, b, c = torch.randn(2, 3), torch.randn(2, 2), torch.randn(2, 4)
    got = fusion({"a": a, "b": b, "c": c}).numpy()
    for i in range(2):
        pad = [np.append(x[i].numpy(), 1.0) for x in (a, b, c)]
        np.testing.assert_allclose(got[i], np.kron(np.kron(pad[0], pad[1]), pad[2]), rtol=1e-6)
    assert got.shape[1] == tensor_fusion_dim({"a": 3, "b": 2, "c": 4}) == 4 * 3 * 5


def test_low_rank_tensor_fusion_equals_full_tensor_fusion_with_the_reconstructed_weight() -> None:
    # Liu et al. (2018): the rank-r weight W = sum_r w_r (W_a^r ⊗ W_b^r) applied to [a;1] ⊗ [b;1].
    lrtf = LowRankTensorFusion(
        {"a": nn.Identity(), "b": nn.Identity()}, {"a": 3, "b": 2}, 4, 5, nn.Identity()
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
