"""``i2m2 analyze RUN_DIR``: the analyses that apply to a finished run, written into RUN_DIR/analysis.

Which apply is recorded in the run: results.json's ``config["analyses"]``, the names its experiment
declared (:attr:`i2m2.experiment.Experiment.analyses`; ``None``: the generic ones, :data:`GENERIC`). So
this module knows analyses, not experiments; each analysis writes nothing when its inputs are not in the run
(no I2M2 row, no groups, ...).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import IO

from i2m2.analysis.artifacts import Artifact
from i2m2.analysis.entropy import entropy_analysis
from i2m2.analysis.fastmri import fastmri_analysis
from i2m2.analysis.groups import groups_analysis
from i2m2.analysis.missing import missing_analysis
from i2m2.analysis.ood_splits import ood_splits_analysis
from i2m2.analysis.out_folder import claim_out_folder
from i2m2.analysis.rescue import rescue_analysis
from i2m2.analysis.run_data import RunData, load_run
from i2m2.analysis.sweep import sweep_analysis
from i2m2.analysis.vl_examples import nlvr2_examples_analysis, vqa_vs_examples_analysis
from i2m2.atomic import atomic_write
from i2m2.errors import DataError, UserError

# The analyses of a run whose experiment declares none: they apply to any single-label run.
GENERIC = ("entropy", "rescue", "groups", "missing", "sweep")

ANALYSES: dict[str, Callable[[RunData], list[Artifact]]] = {
    "entropy": entropy_analysis,
    "rescue": rescue_analysis,
    "groups": groups_analysis,
    "missing": missing_analysis,
    "sweep": sweep_analysis,
    "ood_splits": ood_splits_analysis,  # VQA-VS: Table 3 and Figure C.6 from the ood_* metrics
    "examples_nlvr2": nlvr2_examples_analysis,  # Figure 5, test split re-read from an NLVR2-layout data_dir
    "examples_vqa_vs": vqa_vs_examples_analysis,  # Figure 5, test split re-read from a VQA-VS data_dir
}
# Analyses that read the run folder themselves: fastMRI's predictions hold several findings per example
# (RunData holds one label per example), and its figures also read companion runs in sub-folders.
FOLDER_ANALYSES: dict[str, Callable[[Path], list[Artifact]]] = {"fastmri": fastmri_analysis}


def analyze_run(run_dir: Path, out: Path | None = None) -> list[Path]:
    """Read the run, compute the analyses it records, then write their tables and plots.

    Files go to ``out`` (default ``RUN_DIR/analysis``), each written atomically and only after the
    whole run was read, validated and analyzed, so bad input leaves the run folder as it was.

    Returns:
        The paths written, in order.

    Raises:
        DataError: ``run_dir`` is not a run (no results.json), has no saved predictions, or a
            predictions file is missing, truncated or malformed; the message names it.
        UserError: no analysis applies (e.g. a run of unimodal methods only, without groups), or the run
            names an analysis this version does not know.
    """
    run_dir = Path(run_dir)
    artifacts: list[Artifact] = []
    run: RunData | None = None
    for name in run_analyses(run_dir):
        if name in FOLDER_ANALYSES:
            artifacts += FOLDER_ANALYSES[name](run_dir)
        else:
            run = run or load_run(run_dir)
            artifacts += ANALYSES[name](run)
    if not artifacts:
        methods = run.methods if run is not None else []
        raise UserError(
            f"{run_dir}: nothing to analyze (no I2M2 or intra rows and no groups; methods: {methods})"
        )
    target = Path(out) if out is not None else run_dir / "analysis"
    claim_out_folder(target, [a.name for a in artifacts], default=run_dir / "analysis")
    written = []
    for artifact in artifacts:
        path = target / artifact.name
        atomic_write(path, partial(_write, artifact.content))
        written.append(path)
    return written


def run_analyses(run_dir: Path) -> tuple[str, ...]:
    """The analyses recorded in ``run_dir``'s results.json, in order; a UserError naming unknown ones.

    An unreadable results.json gives the generic ones here, so that reading the run reports what is wrong.
    """
    path = Path(run_dir) / "results.json"
    try:
        results = json.loads(path.read_text())
        config = results["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return GENERIC
    if not isinstance(config, dict):
        return GENERIC
    if "analyses" not in config:
        return _legacy_analyses(results.get("experiment"))
    names = config["analyses"]
    if names is None:
        return GENERIC
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DataError(f"{path}: config 'analyses' must be a list of analysis names, got {names!r:.80}")
    unknown = [n for n in names if n not in ANALYSES and n not in FOLDER_ANALYSES]
    if unknown:
        known = ", ".join([*ANALYSES, *FOLDER_ANALYSES])
        raise UserError(
            f"{path}: config 'analyses' names unknown analysis {', '.join(map(repr, unknown))}; "
            f"known analyses: {known}"
        )
    return tuple(names)


def _legacy_analyses(experiment: object) -> tuple[str, ...]:
    """Compatibility with runs written before experiments declared their analyses (results.json without
    ``config["analyses"]``): what ``i2m2 analyze`` ran for them then, chosen by experiment name. New runs
    record their analyses; do not add experiments here."""
    if experiment == "fastmri-knee":
        return ("fastmri",)
    examples = {"vqa-vs": ("examples_vqa_vs",), "nlvr2": ("examples_nlvr2",)}.get(str(experiment), ())
    return (*GENERIC, "ood_splits", *examples)


def _write(content: bytes, f: IO[bytes]) -> None:
    f.write(content)
