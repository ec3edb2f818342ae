"""``i2m2 analyze RUN_DIR``: every analysis that applies to a finished run, written into RUN_DIR/analysis."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import IO

from i2m2.analysis.artifacts import Artifact
from i2m2.analysis.entropy import entropy_analysis
from i2m2.analysis.fastmri import fastmri_analysis, is_fastmri_run
from i2m2.analysis.groups import groups_analysis
from i2m2.analysis.missing import missing_analysis
from i2m2.analysis.ood_splits import ood_splits_analysis
from i2m2.analysis.rescue import rescue_analysis
from i2m2.analysis.run_data import RunData, load_run
from i2m2.analysis.sweep import sweep_analysis
from i2m2.analysis.vl_examples import vl_examples_analysis
from i2m2.atomic import atomic_write
from i2m2.errors import UserError

ANALYSES: dict[str, Callable[[RunData], list[Artifact]]] = {
    "entropy": entropy_analysis,
    "rescue": rescue_analysis,
    "groups": groups_analysis,
    "missing": missing_analysis,
    "sweep": sweep_analysis,
    "ood_splits": ood_splits_analysis,
    "examples": vl_examples_analysis,
}


def analyze_run(run_dir: Path, out: Path | None = None) -> list[Path]:
    """Read the run, compute every analysis that applies, then write their tables and plots.

    Files go to ``out`` (default ``RUN_DIR/analysis``), each written atomically and only after the
    whole run was read, validated and analyzed, so bad input leaves the run folder as it was.

    Returns:
        The paths written, in order.

    Raises:
        DataError: ``run_dir`` is not a run (no results.json), has no saved predictions, or a
            predictions file is missing, truncated or malformed; the message names it.
        UserError: no analysis applies (e.g. a run of unimodal methods only, without groups).
    """
    if is_fastmri_run(Path(run_dir)):  # four findings per example: its own analyses (Figures 2-4, C.7)
        artifacts, run_path, methods = fastmri_analysis(Path(run_dir)), Path(run_dir), []
    else:
        run = load_run(Path(run_dir))
        artifacts = [a for analysis in ANALYSES.values() for a in analysis(run)]
        run_path, methods = run.path, run.methods
    if not artifacts:
        raise UserError(
            f"{run_path}: nothing to analyze (no I2M2 or intra rows and no groups; methods: {methods})"
        )
    target = Path(out) if out is not None else run_path / "analysis"
    if target.exists() and not target.is_dir():
        raise UserError(f"--out {target}: exists and is not a folder")
    written = []
    for artifact in artifacts:
        path = target / artifact.name
        atomic_write(path, partial(_write, artifact.content))
        written.append(path)
    return written


def _write(content: bytes, f: IO[bytes]) -> None:
    f.write(content)
