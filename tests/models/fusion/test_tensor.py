"""Tensor fusion: the Kronecker product of one-padded features, and its parameter budget warning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from i2m2.models.fusion import TensorFusion
from i2m2.models.fusion.tensor import tensor_fusion_dim
from i2m2.models.registry import create_fusion


def test_tensor_fusion_is_the_kronecker_product_of_one_padded_features() -> None:
    identity = {"a": nn.Identity(), "b": nn.Identity(), "c": nn.Identity()}
    fusion = TensorFusion(identity, nn.Identity())  # the published form: Zadeh et al.'s formula as it is
    a, b, c = torch.randn(2, 3), torch.randn(2, 2), torch.randn(2, 4)
    got = fusion({"a": a, "b": b, "c": c}).numpy()
    normalized = TensorFusion(identity, nn.Identity(), form="normalized")
    scaled = normalized({"a": a, "b": b, "c": c}).numpy()  # unit-RMS features
    for i in range(2):
        pad = [np.append(x[i].numpy(), 1.0) for x in (a, b, c)]
        np.testing.assert_allclose(got[i], np.kron(np.kron(pad[0], pad[1]), pad[2]), rtol=1e-6)
        pad = [np.append(x[i].numpy() / np.sqrt(np.mean(x[i].numpy() ** 2)), 1.0) for x in (a, b, c)]
        np.testing.assert_allclose(scaled[i], np.kron(np.kron(pad[0], pad[1]), pad[2]), rtol=1e-4)
    np.testing.assert_allclose(np.mean(scaled**2, axis=1), 1.0, rtol=1e-4)  # unit mean square for any M
    assert got.shape[1] == tensor_fusion_dim({"a": 3, "b": 2, "c": 4}) == 4 * 3 * 5


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


def test_tensor_fusion_forms_by_name_published_by_default() -> None:
    dims = {"a": 3, "b": 2}
    assert isinstance(published := create_fusion("tensor", dims, num_classes=2, hidden=4), TensorFusion)
    assert published.form == "published"
    assert isinstance(
        normalized := create_fusion("tensor-normalized", dims, num_classes=2, hidden=4), TensorFusion
    )
    assert normalized.form == "normalized"
    with pytest.raises(ValueError, match=r"unknown fusion form 'rms'"):
        create_fusion("tensor", dims, num_classes=2, form="rms")
