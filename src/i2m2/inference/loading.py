"""``i2m2.load_model(RUN, method=...)``: one job of a run folder as a ready :class:`Predictor`.

The job is chosen from the run's job records; without a seed, the seed whose best epoch scored highest on
the validation split (the experiment's monitored metric, read from the job's learning curve), so test data
plays no part in the choice. The model is rebuilt from the experiment that trained it (recorded in the
checkpoint for runs started as ``i2m2 run REF``; pass ``experiment=`` for one built in Python), its weights
loaded weights-only, and its preprocessing read from the JSON beside the checkpoint.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from i2m2.errors import DataError, UserError
from i2m2.experiment import Experiment
from i2m2.inference.predictor import Predictor
from i2m2.inference.preprocessing import Preprocessing, of_splits


@dataclass
class Job:
    """One finished job of a run: who it is and how well its best epoch did on validation."""

    stem: str
    method: str
    group: str
    seed: int
    validation: float | None


def load_model(
    run: Path | str,
    method: str = "i2m2",
    seed: int | None = None,
    group: str | None = None,
    experiment: Experiment | None = None,
) -> Predictor:
    """The trained model of one (method, group, seed) of a run folder, with its preprocessing.

    Args:
        run: a folder written by ``i2m2 run`` (or :func:`i2m2.run_experiment`).
        method: the row: ``i2m2``, ``intra``, ``inter``, ``unimodal:<m>``, ``i2m2[lrtf]``, ...
        seed: the seed; ``None``: the one with the best validation metric (``predictor.selection`` says).
        group: the regime or task; ``None``: the run's only group.
        experiment: the experiment, for runs started from Python with an :class:`Experiment` object (the
            run then records no reference to rebuild it from).
    """
    folder = Path(run)
    if not (folder / "jobs").is_dir():
        raise UserError(f"{folder}: not a run folder (no jobs/); expected a folder written by 'i2m2 run'")
    monitor = _monitor(folder)
    jobs = [j for j in _jobs(folder, monitor) if j.method == method]
    if not jobs:
        methods = sorted({j.method for j in _jobs(folder, monitor)})
        raise UserError(f"--method: '{method}' has no finished job in {folder}; expected one of {methods}")
    groups = sorted({j.group for j in jobs})
    if group is None and len(groups) > 1:
        raise UserError(f"--group: {folder} has groups {groups}; say which")
    group = groups[0] if group is None else group
    jobs = [j for j in jobs if j.group == group]
    if not jobs:
        raise UserError(f"--group: '{group}' is not a group of {folder}; expected one of {groups}")
    job, selection = _choose(jobs, seed, monitor)
    checkpoint = folder / "checkpoints" / f"{job.stem}.ckpt"
    content = _read_checkpoint(checkpoint)
    facts = content.get("hyper_parameters", {}).get("job") or {}
    built = experiment or _experiment(facts, checkpoint)
    model = built.build_model(method, group, facts.get("fusion"), bool(facts.get("all_subsets")))
    state = {k.removeprefix("model."): v for k, v in content["state_dict"].items() if k.startswith("model.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise DataError(
            f"{checkpoint}: its weights do not fit the model of '{method}' built by experiment "
            f"'{built.name}' ({str(err).splitlines()[0]}); expected the experiment and options that "
            "trained it"
        ) from err
    preprocessing = _preprocessing(folder, job, built, facts)
    missing = [m for m in model.modalities if m not in preprocessing.inputs]
    if missing:
        raise DataError(f"{folder}: the preprocessing of {job.stem} lacks modalities {missing}")
    about = {"run": str(folder), "method": method, "group": group, "seed": job.seed, "experiment": built.name}
    return Predictor(model, preprocessing, about | {"selection": selection})


def _monitor(folder: Path) -> str:
    for name in ("results.json",):
        try:
            return str(json.loads((folder / name).read_text())["config"]["monitor"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return "acc"


def _jobs(folder: Path, monitor: str) -> list[Job]:
    found = []
    for path in sorted((folder / "jobs").glob("*.json")):
        try:
            record = json.loads(path.read_text())
            job = Job(path.stem, str(record["method"]), str(record["group"]), int(record["seed"]), None)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # an unreadable record is a job that will run again, not one to predict with
        if (folder / "checkpoints" / f"{job.stem}.ckpt").is_file():
            job.validation = _best_validation(folder / "logs" / job.stem / "metrics.csv", monitor)
            found.append(job)
    return found


def _best_validation(curve: Path, monitor: str) -> float | None:
    """The best epoch's validation metric from the job's learning curve (``None`` without a curve)."""
    try:
        rows = list(csv.DictReader(curve.read_text().splitlines()))
    except OSError:
        return None
    values = [float(v) for r in rows if (v := r.get(f"val/{monitor}"))]
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return None
    return min(values) if monitor == "loss" else max(values)


def _choose(jobs: list[Job], seed: int | None, monitor: str) -> tuple[Job, str]:
    seeds = sorted(j.seed for j in jobs)
    if seed is not None:
        chosen = [j for j in jobs if j.seed == seed]
        if not chosen:
            raise UserError(
                f"--seed: {seed} has no finished job of '{jobs[0].method}'; expected one of {seeds}"
            )
        return chosen[0], f"seed {seed}, as asked"
    scored = [j for j in jobs if j.validation is not None]
    if not scored:
        return min(jobs, key=lambda j: j.seed), f"seed {min(seeds)}: no learning curves to choose by"
    sign = -1.0 if monitor == "loss" else 1.0
    best = max(scored, key=lambda j: (sign * (j.validation or 0.0), -j.seed))
    return best, f"seed {best.seed}: best validation {monitor} {best.validation:.4f} of seeds {seeds}"


def _read_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, foreign, or holding objects weights-only loading refuses
        raise DataError(f"{path}: not a readable i2m2 checkpoint ({type(err).__name__})") from err
    if not isinstance(content, dict) or not isinstance(content.get("state_dict"), dict):
        raise DataError(f"{path}: not an i2m2 checkpoint (no 'state_dict')")
    return content


def _experiment(facts: dict[str, Any], checkpoint: Path) -> Experiment:
    from i2m2.catalog import ExperimentRef

    reference = facts.get("experiment_ref")
    if not isinstance(reference, dict):
        raise UserError(
            f"{checkpoint}: the run was started from Python with an Experiment object, so it records no way "
            "to rebuild it; pass it: load_model(RUN, ..., experiment=my_experiment)"
        )
    options = reference.get("options") or {}
    try:
        return ExperimentRef(reference["ref"], tuple(sorted(options.items()))).build()
    except UserError as err:
        raise UserError(
            f"{err}; the run was trained with experiment '{reference['ref']}' (a file path is read from the "
            "folder the run started in): run from there, or pass experiment= to load_model"
        ) from err


def _preprocessing(folder: Path, job: Job, experiment: Experiment, facts: dict[str, Any]) -> Preprocessing:
    """The job's saved preprocessing; for runs written before it was saved, rebuilt from the job's data
    (the same deterministic reader and seed)."""
    path = folder / "checkpoints" / f"{job.stem}.inputs.json"
    if path.is_file():
        return Preprocessing.load(path)
    data_dir = facts.get("data_dir")
    splits = experiment.load_splits(job.group, Path(data_dir) if data_dir else None, job.seed)
    return of_splits(splits, experiment.modalities, experiment.classes(job.group))
