"""One encoder shared by the two images of a pair (NLVR2): ``(batch, 2, ...) -> (batch, 2 * D)``."""

from __future__ import annotations

from torch import Tensor, nn


class PairEncoder(nn.Module):
    """Runs ``encoder`` on both images of each pair with the same weights, then joins the features.

    The features are concatenated left then right, so the head can still tell "the left image" from
    "the right image" (an NLVR2 statement often does).

    Args:
        encoder: maps ``(n, ...)`` to ``(n, D)`` and has an ``out_features`` attribute ``D``.
    """

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        size = getattr(encoder, "out_features", None)
        if not isinstance(size, int):
            raise ValueError("PairEncoder: the encoder needs an integer out_features attribute")
        self.encoder = encoder
        self.out_features = 2 * size

    def forward(self, pairs: Tensor) -> Tensor:
        if pairs.dim() < 3 or pairs.shape[1] != 2:
            raise ValueError(f"PairEncoder: expected (batch, 2, ...), got {tuple(pairs.shape)}")
        features = self.encoder(pairs.flatten(0, 1))
        return features.reshape(len(pairs), -1)
