"""Which jobs a comparison runs: stage 1 trains every expert alone, stage 2 fine-tunes the products.

The plan is a graph: a stage-2 job depends on the stage-1 jobs whose weights it starts from
(``Job.init_from``). Row names are those of :mod:`i2m2.models.methods`.
"""

from __future__ import annotations

from dataclasses import dataclass

from i2m2.errors import UserError
from i2m2.experiment import Experiment
from i2m2.models.methods import (
    LOGISTIC,
    STAGE2_METHODS,
    UNIMODAL_PREFIX,
    fused_row,
    method_base,
    row_fusion,
)


@dataclass(frozen=True)
class Job:
    """One (method, fusion) to train; ``init_from`` lists the stage-1 jobs whose weights it starts from."""

    method: str  # the run's row name, e.g. "i2m2[lrtf]"
    base: str  # the method as build_method knows it: unimodal:<m>, intra, inter, i2m2
    fusion: str | None
    init_from: tuple[str, ...] = ()

    @property
    def stage(self) -> int:
        return 2 if self.base in STAGE2_METHODS else 1


def all_methods(experiment: Experiment, fusions: list[str] | None = None) -> list[str]:
    """Every row of the experiment's table, in the paper's order (``fusions``: those compared)."""
    fusions = list(fusions or experiment.fusions())
    tagged = len(fusions) > 1
    if len(experiment.modalities) < 2:  # a one-modality baseline (e.g. fastMRI's RSS row) has one row
        return [UNIMODAL_PREFIX + m for m in experiment.modalities]
    # the plain baseline first, when the inputs are vectors it can read
    baseline = [LOGISTIC] if experiment.input_dims is not None and experiment.objective is None else []
    return (
        baseline
        + [UNIMODAL_PREFIX + m for m in experiment.modalities]
        + ["intra"]
        + [fused_row("inter", f, tagged) for f in fusions]
        + [fused_row("i2m2", f, tagged) for f in fusions]
    )


def parse_method(experiment: Experiment, method: str, fusions: list[str] | None = None) -> Job:
    """The job of one row name; a :class:`UserError` listing the valid names otherwise."""
    fusions = list(fusions or experiment.fusions())
    valid = all_methods(experiment, fusions)
    if method not in valid:
        raise UserError(
            f"unknown method '{method}' for experiment '{experiment.name}'; expected one of {valid}"
        )
    unimodal = [UNIMODAL_PREFIX + m for m in experiment.modalities]
    if method.startswith(UNIMODAL_PREFIX) or method == LOGISTIC:
        return Job(method, method, None)
    if method == "intra":
        return Job(method, "intra", None, tuple(unimodal))
    base, fusion = method_base(method), row_fusion(method) or fusions[0]
    if base == "inter":
        return Job(method, "inter", fusion)
    return Job(method, "i2m2", fusion, (*unimodal, fused_row("inter", fusion, len(fusions) > 1)))


def plan_jobs(
    experiment: Experiment, methods: list[str] | None, from_scratch: bool, fusions: list[str] | None = None
) -> list[Job]:
    """Stage-1 jobs first (including those a requested product needs), then stage-2 jobs."""
    fusions = list(fusions or experiment.fusions())
    if len(set(methods or [])) != len(methods or []):
        duplicated = sorted({m for m in methods or [] if (methods or []).count(m) > 1})
        raise UserError(f"--methods: {duplicated} given more than once")
    wanted = [parse_method(experiment, m, fusions) for m in (methods or all_methods(experiment, fusions))]
    if from_scratch:
        wanted = [Job(j.method, j.base, j.fusion) for j in wanted]
    needed = {j.method for j in wanted} | {name for j in wanted for name in j.init_from}
    ordered = [parse_method(experiment, m, fusions) for m in all_methods(experiment, fusions) if m in needed]
    by_name = {j.method: j for j in wanted}
    return sorted((by_name.get(j.method, j) for j in ordered), key=lambda j: j.stage)
