r"""Synthetic data from the paper's generative process (Eq. 1), with one knob per kind of dependence.

The process, for K classes and M modalities, each modality a vector in R^d:

.. math::

    p(y, z, x, v{=}1) = p(y) \prod_{m=1}^{M} p(z_m)\, p(x_m \mid y, z_m) \cdot p(v{=}1 \mid z, y),
    \qquad p(v{=}1 \mid z, y) = \mathbb{1}\Big[\textstyle\sum_m z_m \equiv y \pmod K\Big]

* ``y ~ Uniform{0..K-1}``, latent codes ``z_m ~ Uniform{0..K-1}`` independently;
* ``x_m = intra * a_m[y] + inter * b_m[z_m] + noise * eps``, with fixed unit vectors ``a_m[k], b_m[k]``
  and ``eps ~ N(0, I_d)``;
* the selection variable v (always observed as 1) keeps only the draws whose codes sum to y mod K.
  Sampling conditioned on v = 1 is exact: draw z_1..z_{M-1} uniformly and set
  ``z_M = (y - z_1 - ... - z_{M-1}) mod K``.

Limits. ``inter = 0``: x_m depends on y alone, so the modalities are conditionally independent given y
(the intra-modality model is correct). ``intra = 0``: any M-1 codes are uniform and independent of y, so
each modality alone is at chance, while all M codes together determine y (only inter-modality modeling
can predict). In between, both kinds of dependence carry information about the label.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from i2m2.data.multimodal_dataset import DataSplits, MultimodalDataset


@dataclass(frozen=True)
class SyntheticTask:
    """One instance of the generative process; its class and code vectors are fixed by ``seed``.

    Args:
        num_classes: K.
        num_modalities: M >= 2; modalities are named ``m0, m1, ...``.
        dim: d, the size of each modality's vector.
        intra: strength of each modality's own dependence on the label.
        inter: strength of the dependence that exists only across modalities (the selection).
        noise: standard deviation of the Gaussian noise.
        seed: fixes the class and code vectors (the "world"); samples use their own seeds.
    """

    num_classes: int = 4
    num_modalities: int = 2
    dim: int = 16
    intra: float = 1.0
    inter: float = 1.0
    noise: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_classes < 2 or self.num_modalities < 2 or self.dim < 1:
            raise ValueError("need num_classes >= 2, num_modalities >= 2 and dim >= 1")
        if min(self.intra, self.inter, self.noise) < 0:
            raise ValueError("intra, inter and noise must be >= 0")

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(f"m{i}" for i in range(self.num_modalities))

    def vectors(self) -> tuple[Tensor, Tensor]:
        """The fixed unit vectors ``(a, b)``, each ``(M, K, d)``: ``a[m, label]`` and ``b[m, code]``."""
        g = torch.Generator().manual_seed(self.seed)
        shape = (self.num_modalities, self.num_classes, self.dim)
        a = torch.randn(shape, generator=g)
        b = torch.randn(shape, generator=g)
        return a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)

    def sample(self, n: int, seed: int) -> MultimodalDataset:
        """Draw ``n`` examples ``(x_m0, ..., x_m{M-1}, y)`` given v = 1."""
        g = torch.Generator().manual_seed(seed)
        k, m = self.num_classes, self.num_modalities
        a, b = self.vectors()
        y = torch.randint(k, (n,), generator=g)
        z = torch.randint(k, (n, m), generator=g)
        z[:, -1] = (y - z[:, :-1].sum(1)) % k  # the selection v = 1
        inputs = {}
        for i, name in enumerate(self.modalities):
            eps = torch.randn(n, self.dim, generator=g)
            inputs[name] = self.intra * a[i, y] + self.inter * b[i, z[:, i]] + self.noise * eps
        return MultimodalDataset(inputs, y)

    def splits(self, n_train: int, n_val: int, n_test: int, seed: int = 0) -> DataSplits:
        """Independent train/validation/test samples; ``seed`` varies the samples, not the world."""
        base = 1_000 * (seed + 1) + self.seed
        return DataSplits(
            self.sample(n_train, base + 1),
            self.sample(n_val, base + 2),
            self.sample(n_test, base + 3),
            self.num_classes,
        )
