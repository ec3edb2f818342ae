"""The synthetic sweep's cell rule: I2M2 against the better specialist, paired by seed."""

from __future__ import annotations

import pytest

from i2m2.analysis.sweep import Cell


def test_cell_noise_rule():
    """Paired by seed against the specialist with the higher mean; within noise when |mean| < 2 SE."""
    cell = Cell(0.0, 1.0, intra=[0.5, 0.5, 0.5], inter=[0.6, 0.62, 0.58], i2m2=[0.62, 0.65, 0.59])
    assert cell.better == "inter" and cell.diffs == pytest.approx([0.02, 0.03, 0.01])
    assert cell.se == pytest.approx(0.01 / 3**0.5)  # std(ddof=1) 0.01 over sqrt(3)
    assert cell.within_noise is False  # 0.02 > 2 * 0.00577
    noisy = Cell(0.0, 1.0, intra=[0.5, 0.5], inter=[0.4, 0.4], i2m2=[0.45, 0.56])
    assert noisy.better == "intra" and noisy.within_noise is True
    assert Cell(0, 0, [0.5], [0.4], [0.6]).within_noise is None  # one seed: no estimate
