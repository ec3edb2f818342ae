"""Subsets of modalities: which to withhold in the missing-modality analysis, which to multiply at test time.

Shared by the run (which asks a null-token expert again without each subset it saves) and by
``i2m2 analyze`` (which reads those saved predictions), so both enumerate the same subsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

# Per number of modalities withheld: every subset when there are at most this many, else a seeded sample.
MAX_PER_SIZE = 20
SAMPLE_SEED = 0


def withheld_subsets(modalities: Sequence[str], max_per_size: int = MAX_PER_SIZE) -> list[tuple[str, ...]]:
    """Every non-empty proper subset, by size then in order; of a size with more than ``max_per_size``
    subsets, a seeded sample (seed 0) of ``max_per_size``. Six modalities: all 62 (6, 15, 20, 15, 6)."""
    chosen: list[tuple[str, ...]] = []
    for size in range(1, len(modalities)):
        subsets = list(combinations(modalities, size))
        if len(subsets) > max_per_size:
            rng = np.random.default_rng(SAMPLE_SEED + size)
            picked = set(rng.choice(len(subsets), size=max_per_size, replace=False).tolist())
            subsets = [s for i, s in enumerate(subsets) if i in picked]
        chosen += subsets
    return chosen


def subset_masks(count: int, min_size: int = 1) -> list[tuple[bool, ...]]:
    """Every subset of ``count`` items with at least ``min_size`` of them, as masks, by size then in order."""
    return [
        tuple(i in subset for i in range(count))
        for size in range(min_size, count + 1)
        for subset in combinations(range(count), size)
    ]
