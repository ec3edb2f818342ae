"""A small multilayer perceptron: the default head and the encoder for vector modalities."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from torch import Tensor, nn

from i2m2.models.validation import check_sizes


class MLP(nn.Sequential):
    """Linear layers with ReLU (and optional dropout) between them; no activation after the last.

    Args:
        in_dim: input features (inputs are flattened from the second axis on).
        hidden_dims: sizes of the hidden layers, possibly empty (a linear model).
        out_dim: output features.
        dropout: dropout probability after each hidden activation.
    """

    def __init__(self, in_dim: int, hidden_dims: Sequence[int], out_dim: int, dropout: float = 0.0) -> None:
        check_sizes(
            "MLP",
            in_dim=in_dim,
            out_dim=out_dim,
            **{f"hidden_dims[{i}]": d for i, d in enumerate(hidden_dims)},
        )
        layers: list[nn.Module] = [nn.Flatten(1)]
        dims = [in_dim, *hidden_dims]
        for d_in, d_out in pairwise(dims):
            layers += [nn.Linear(d_in, d_out), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(dims[-1], out_dim))
        super().__init__(*layers)
        self.in_dim = in_dim
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:  # a typed override, for mypy
        return super().forward(x)
