"""Low-rank tensor fusion: full tensor fusion with the reconstructed weight; real parameters."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from i2m2.models.fusion import LowRankTensorFusion
from i2m2.models.mlp import MLP


def _lrtf() -> LowRankTensorFusion:
    encoders = {"a": MLP(4, [], 3), "b": MLP(2, [], 3)}
    return LowRankTensorFusion(encoders, {"a": 3, "b": 3}, rank=2, output_dim=5, head=MLP(5, [], 3))


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
