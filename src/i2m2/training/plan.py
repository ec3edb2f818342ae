"""Which jobs a comparison runs: stage 1 trains every expert alone, stage 2 fine-tunes the products.

Method names in a run: ``unimodal:<m>``, ``intra``, ``inter`` and ``i2m2``; when an experiment offers
several fusions they read ``inter[<fusion>]`` and ``i2m2[<fusion>]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from i2m2.errors import UserError
from i2m2.experiment import Experiment
from i2m2.models.methods import UNIMODAL_PREFIX

_FUSED = re.compile(r"^(inter|i2m2)(?:\[(.+)\])?$")


@dataclass(frozen=True)
class Job:
    """One (method, fusion) to train; ``init_from`` lists the stage-1 jobs whose weights it starts from."""

    method: str  # the run's row name, e.g. "i2m2[lrtf]"
    base: str  # the method as build_method knows it: unimodal:<m>, intra, inter, i2m2
    fusion: str | None
    init_from: tuple[str, ...] = ()

    @property
    def stage(self) -> int:
        return 2 if self.base in ("intra", "i2m2") else 1


def all_methods(experiment: Experiment, fusions: list[str] | None = None) -> list[str]:
    """Every row of the experiment's table, in the paper's order (``fusions``: those compared)."""
    fusions = list(fusions or experiment.fusions())
    tag = (lambda f: f"[{f}]") if len(fusions) > 1 else (lambda f: "")
    if len(experiment.modalities) < 2:  # a one-modality baseline (e.g. fastMRI's RSS row) has one row
        return [UNIMODAL_PREFIX + m for m in experiment.modalities]
    return (
        [UNIMODAL_PREFIX + m for m in experiment.modalities]
        + ["intra"]
        + [f"inter{tag(f)}" for f in fusions]
        + [f"i2m2{tag(f)}" for f in fusions]
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
    if method.startswith(UNIMODAL_PREFIX):
        return Job(method, method, None)
    if method == "intra":
        return Job(method, "intra", None, tuple(unimodal))
    match = _FUSED.match(method)
    assert match is not None
    base, fusion = match.group(1), match.group(2) or fusions[0]
    if base == "inter":
        return Job(method, "inter", fusion)
    inter_row = "inter" if len(fusions) == 1 else f"inter[{fusion}]"
    return Job(method, "i2m2", fusion, (*unimodal, inter_row))


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
