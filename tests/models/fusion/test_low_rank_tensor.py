"""Low-rank tensor fusion: full tensor fusion with the reconstructed weight; real parameters; the published
form (Liu et al.'s formula and initialisation) and the normalized one."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from i2m2.experiments.avmnist import avmnist_lrtf
from i2m2.models.fusion import LowRankTensorFusion
from i2m2.models.mlp import MLP
from i2m2.models.registry import create_fusion


def _lrtf() -> LowRankTensorFusion:
    encoders = {"a": MLP(4, [], 3), "b": MLP(2, [], 3)}
    return LowRankTensorFusion(encoders, {"a": 3, "b": 3}, rank=2, output_dim=5, head=MLP(5, [], 3))


def test_low_rank_tensor_fusion_equals_full_tensor_fusion_with_the_reconstructed_weight() -> None:
    # Liu et al. (2018): the rank-r weight W = sum_r w_r (W_a^r ⊗ W_b^r) applied to [a;1] ⊗ [b;1].
    lrtf = LowRankTensorFusion(
        {"a": nn.Identity(), "b": nn.Identity()}, {"a": 3, "b": 2}, 4, 5, nn.Identity()
    )
    assert lrtf.form == "published"  # the default: the plain formula on the encoders' outputs
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


def _identity_lrtf(dims: dict[str, int], rank: int, output_dim: int, form: str) -> LowRankTensorFusion:
    encoders = {m: nn.Identity() for m in dims}
    return LowRankTensorFusion(encoders, dims, rank, output_dim, nn.Identity(), form=form)  # type: ignore[arg-type]


def test_the_published_form_has_the_reference_codes_xavier_normal_initialisation() -> None:
    # AV-MNIST's sizes (image 8c = 48 and audio 32c = 192 features at c = 6, rank 40, output 120): torch's
    # Xavier fans of a (r, d + 1, out) factor are (d + 1) * out and r * out; of the (1, r) rank weights r, 1.
    torch.manual_seed(0)
    lrtf = avmnist_lrtf(("image", "audio"), 10)
    assert lrtf.form == "published"
    for m, d in (("image", 48), ("audio", 192)):
        factor = lrtf.factors[m].detach()
        assert factor.shape == (40, d + 1, 120)
        expected = np.sqrt(2.0 / ((d + 1 + 40) * 120))
        assert abs(factor.std().item() / expected - 1) < 0.02, (m, factor.std().item(), expected)
        assert abs(factor.mean().item()) < 0.02 * expected
        assert abs(_excess_kurtosis(factor)) < 0.05  # normal, not uniform (excess kurtosis -1.2)
    torch.manual_seed(0)
    weights = torch.cat(
        [_identity_lrtf({"a": 2}, 50, 1, "published").rank_weights.detach() for _ in range(40)]
    )
    assert abs(weights.std().item() / np.sqrt(2.0 / 51) - 1) < 0.05  # 2000 draws of std sqrt(2 / (r + 1))
    assert torch.equal(lrtf.bias.detach(), torch.zeros(1, 120))


def _excess_kurtosis(x: torch.Tensor) -> float:
    z = (x - x.mean()) / x.std()
    return float((z**4).mean() - 3)


def test_the_normalized_form_has_unit_variance_factors_and_is_still_available_by_name() -> None:
    torch.manual_seed(0)
    lrtf = create_fusion(
        "lrtf-normalized", {"a": 7, "b": 3}, num_classes=4, hidden=16, rank=64, feature_dim=31
    )
    assert isinstance(lrtf, LowRankTensorFusion) and lrtf.form == "normalized"
    factor = lrtf.factors["a"].detach()  # (64, 32, 16): variance 1 / (d + 1)
    assert abs(factor.std().item() * np.sqrt(32) - 1) < 0.02
    assert abs(lrtf.rank_weights.detach().std().item() * np.sqrt(64) - 1) < 0.2  # 64 draws
    published = create_fusion("lrtf", {"a": 7, "b": 3}, num_classes=4, hidden=16, rank=64, feature_dim=31)
    assert isinstance(published, LowRankTensorFusion) and published.form == "published"
    explicit = create_fusion("lrtf", {"a": 7, "b": 3}, num_classes=4, form="normalized")
    assert isinstance(explicit, LowRankTensorFusion) and explicit.form == "normalized"


def test_only_the_normalized_form_scales_each_modalitys_features() -> None:
    # Scaling one example's features by 10 scales the published fused vector's a-part (a linear function of
    # [a; 1]) and leaves the normalized one unchanged: the published form has no normalization.
    torch.manual_seed(0)
    a, b = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    for form in ("published", "normalized"):
        lrtf = _identity_lrtf({"a": 3, "b": 2}, 4, 6, form).double()
        base, scaled = lrtf({"a": a, "b": b}), lrtf({"a": 10 * a, "b": b})
        if form == "normalized":
            torch.testing.assert_close(scaled, base, rtol=1e-4, atol=1e-5)  # up to rms_norm's eps
        else:
            at_zero = lrtf({"a": torch.zeros_like(a), "b": b})  # the constant-1 term alone
            torch.testing.assert_close(scaled - at_zero, 10 * (base - at_zero))


def test_an_unknown_form_names_the_choices() -> None:
    with pytest.raises(
        ValueError, match=r"unknown fusion form 'unit'; expected one of \['published', 'normalized'\]"
    ):
        _identity_lrtf({"a": 2}, 2, 3, "unit")
