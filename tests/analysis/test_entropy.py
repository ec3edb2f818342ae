"""Entropy of the labels and of each expert's predictions (Table C.7), on a hand-made run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from i2m2.analysis.entropy import entropy_stats, label_entropy, predictive_entropy
from i2m2.analysis.run_data import load_run
from tests.helpers.analysis import H_HALF, LABELS, UNIFORM, C, half_sure, write_run


def test_entropy_values():
    assert predictive_entropy(UNIFORM) == pytest.approx(math.log(3))
    assert predictive_entropy(half_sure([0, 1, 2])) == pytest.approx(H_HALF)
    with np.errstate(divide="ignore"):
        sure = np.log(np.array([[1.0, 0.0, 0.0]]))  # log 0 = -inf must count as 0, not NaN
    assert predictive_entropy(sure) == pytest.approx(0.0)
    assert label_entropy(LABELS, C) == pytest.approx(math.log(3))
    assert label_entropy(np.array([0, 1, 2, 0]), C) == pytest.approx(H_HALF)
    assert label_entropy(np.array([1, 1]), 5) == pytest.approx(0.0)


def test_entropy_table_c7(tmp_path: Path):
    run = load_run(write_run(tmp_path / "run"))
    stats = {s.name: s for s in entropy_stats(run)}
    assert list(stats) == ["H(y)", "H(ŷ | a)", "H(ŷ | b)", "H(ŷ | inter)", "H(ŷ | i2m2)"]
    assert stats["H(y)"].mean == pytest.approx(math.log(3), abs=1e-3)
    assert stats["H(ŷ | a)"].mean == pytest.approx(H_HALF, abs=2e-3)  # float16 files
    assert stats["H(ŷ | b)"].mean == pytest.approx(math.log(3), abs=2e-3)
    assert stats["H(ŷ | i2m2)"].std == pytest.approx(0.0, abs=1e-6)
    assert {s.method for s in stats.values()} == {"i2m2"}  # only I2M2's fine-tuned experts
