"""The thesis as a map: intra, inter and I2M2 over a grid of intra- and inter-modality strengths.

Each group of the run is one cell ``intra=<a> inter=<b>`` of the grid: the demo's generator
(:class:`~i2m2.data.synthetic.SyntheticTask`, Eq. 1, noise 1) with those two strengths, used as it is,
and the demo's experts and recipe. ``i2m2 analyze`` then draws ``sweep.png``: per cell, I2M2's test
accuracy minus that of the better specialist (intra or inter, whichever has the higher mean), with the
cells where the difference is within noise marked (see :mod:`i2m2.analysis.sweep`).
"""

from __future__ import annotations

from dataclasses import replace

from i2m2.catalog import register_experiment
from i2m2.errors import UserError
from i2m2.experiment import Experiment
from i2m2.experiments.synthetic import generator_experiment

SWEEP_METHODS = ("intra", "inter", "i2m2")


def cell_name(intra: float, inter: float) -> str:
    """A grid cell's group name, e.g. ``intra=0.5 inter=2``."""
    return f"intra={intra:g} inter={inter:g}"


@register_experiment("synthetic-sweep")
def synthetic_sweep(
    intra: list[float] | None = None,
    inter: list[float] | None = None,
    num_classes: int = 4,
    num_modalities: int = 2,
    dim: int = 16,
    hidden: int = 64,
    n_train: int = 800,
    n_val: int = 500,
    n_test: int = 2000,
) -> Experiment:
    """Intra, inter and I2M2 over a grid of intra x inter strengths of the synthetic generator.

    Args:
        intra: intra-modality strengths, one grid row each (default 0 0.5 1 1.5).
        inter: inter-modality strengths, one grid column each (default 0 1 2 3).
        num_classes: K.
        num_modalities: M (modalities m0, m1, ...).
        dim: size of each modality's vector.
        hidden: width of every MLP.
        n_train: training examples per cell and seed.
        n_val: validation examples per cell and seed.
        n_test: test examples per cell and seed.
    """
    rows = list(intra if intra is not None else [0.0, 0.5, 1.0, 1.5])
    columns = list(inter if inter is not None else [0.0, 1.0, 2.0, 3.0])
    if not rows or not columns or min(rows + columns) < 0:
        raise UserError(
            f"--intra and --inter: expected non-empty lists of strengths >= 0, got {rows}, {columns}"
        )
    if len(set(rows)) != len(rows) or len(set(columns)) != len(columns):
        raise UserError(f"--intra and --inter: a strength is given twice ({rows}, {columns})")
    cells = {cell_name(a, b): (a, b) for a in rows for b in columns}
    description = (
        f"synthetic generator (Eq. 1) over intra {[f'{a:g}' for a in rows]} x inter "
        f"{[f'{b:g}' for b in columns]}, M={num_modalities}, K={num_classes}"
    )
    experiment = generator_experiment(
        "synthetic-sweep",
        description,
        cells,
        num_classes,
        num_modalities,
        dim,
        hidden,
        (n_train, n_val, n_test),
    )
    return replace(experiment, default_methods=SWEEP_METHODS)
