"""One job of a comparison as a pure function: every input explicit, every output returned.

:func:`run_job` builds the method from the experiment (:meth:`~i2m2.experiment.Experiment.build_model`),
starts it from its stage-1 weights, trains and tests it, and returns metrics, weights, predictions, the
learning curve and its timings. It writes nothing but its scratch folder, so it can run in this process,
another process or another machine; the driver (:class:`~i2m2.orchestration.comparison.Comparison`)
alone writes the run folder.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from torch import Tensor

from i2m2.catalog import ExperimentRef
from i2m2.errors import DataError
from i2m2.experiment import Experiment, Splits, StageConfig
from i2m2.inference.preprocessing import of_splits
from i2m2.metrics import mixture_accuracy
from i2m2.models.methods import STAGE2_METHODS, method_base
from i2m2.runs.folder import plain, read_model_weights
from i2m2.runs.predictions import Predictions, job_stem
from i2m2.training.fit import FitSettings, fit_and_test


@dataclass
class JobSpec:
    """Everything one job needs.

    Args:
        experiment: the experiment, or a reference another process can rebuild it from.
        method: the row to train (``unimodal:a``, ``intra``, ``inter[lrtf]``, ``i2m2``, ...).
        group: the regime or task.
        seed: seeds the initial weights, the batch order and any sampling of the data.
        stage: the resolved training settings (:meth:`~i2m2.experiment.Experiment.stage_config`).
        fusion: the inter experts' fusion when ``method`` names none.
        all_subsets: one inter expert per subset of two or more modalities.
        prior_correction: the exact Eq. (3) for products of several experts.
        data_dir: the dataset folder (must exist where the job runs).
        init_from: the stage-1 weights a product starts from, by row: a state_dict, or the checkpoint file
            holding it.
        trainer: ``lightning.pytorch.Trainer`` arguments.
        num_workers: DataLoader worker processes.
        scratch: the one folder the job may write (``None``: a temp folder).
        progress: ``bar``, ``lines`` (one line per epoch) or ``none``.
        label: what each epoch line starts with.
        test: ``False`` trains and selects on validation only: the metrics are the best epoch's
            ``val/<monitor>`` and the test split is never read (tuning).
        callbacks: more Trainer callbacks (picklable, for executors that run jobs in other processes).
    """

    experiment: Experiment | ExperimentRef
    method: str
    group: str
    seed: int
    stage: StageConfig
    fusion: str | None = None
    all_subsets: bool = False
    prior_correction: bool = False
    data_dir: Path | None = None
    init_from: dict[str, dict[str, Tensor] | Path] = field(default_factory=dict)
    trainer: dict[str, Any] = field(default_factory=dict)
    num_workers: int = 0
    scratch: Path | None = None
    progress: Literal["bar", "lines", "none"] = "none"
    label: str = ""
    test: bool = True
    callbacks: list[Any] = field(default_factory=list)


@dataclass
class JobResult:
    """What a job returns; the driver turns it into the run folder's files."""

    metrics: dict[str, float]
    state_dict: dict[str, Tensor]
    hyper_parameters: dict[str, Any]
    predictions: Predictions | None
    curve: str
    epochs: int
    phases: dict[str, float]
    wall_time_s: float
    experts: dict[str, dict[str, Any]]  # name -> the modalities it reads, whether it handles missing ones
    log_prior: list[float] | None = None
    majority: float | None = None  # the majority class's share of the test labels (single-label data)
    preprocessing: dict[str, Any] | None = None  # raw input -> model input, plain (i2m2.load_model reads it)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)

    def record(self) -> dict[str, Any]:
        """The job record's own part (the driver adds who the job is)."""
        record: dict[str, Any] = {
            "metrics": self.metrics,
            "epochs": self.epochs,
            "wall_time_s": self.wall_time_s,
            "experts": self.experts,
            "phases_s": self.phases,
            "ran_on": {"host": self.host, "pid": self.pid},
        }
        if self.log_prior is not None:
            record["log_prior"] = self.log_prior
        return record


def experiment_of(spec: JobSpec) -> Experiment:
    return spec.experiment if isinstance(spec.experiment, Experiment) else spec.experiment.build()


_SPLITS: dict[tuple[Any, ...], Splits] = {}


def job_splits(spec: JobSpec) -> Splits:
    """The job's data, loaded where the job runs; kept for the next job of the same (group, seed)."""
    experiment = experiment_of(spec)
    key = (id(experiment), spec.group, str(spec.data_dir), spec.seed)
    if key not in _SPLITS:
        _SPLITS.clear()  # one (group, seed) at a time
        _SPLITS[key] = experiment.load_splits(spec.group, spec.data_dir, spec.seed)
    return _SPLITS[key]


def forget_splits() -> None:
    """Release the data kept for the next job (a run's end)."""
    _SPLITS.clear()


def run_job(spec: JobSpec) -> JobResult:
    """Train and test one job; its metrics, weights, predictions, curve and costs."""
    started = time.perf_counter()
    experiment = experiment_of(spec)
    splits = job_splits(spec)
    pl.seed_everything(spec.seed, verbose=False)  # the initial weights are part of what a seed fixes
    model = experiment.build_model(spec.method, spec.group, spec.fusion, spec.all_subsets)
    if spec.init_from:
        load_stage_one(model, spec.init_from)
    if spec.prior_correction and len(model.experts) > 1:
        model.set_prior_from_labels(training_labels(splits), experiment.classes(spec.group))
    facts = {"experiment": experiment.name, "method": spec.method, "group": spec.group, "seed": spec.seed}
    if isinstance(spec.experiment, ExperimentRef):  # what 'i2m2 test --ckpt_path' rebuilds the job from
        facts["experiment_ref"] = {
            "ref": spec.experiment.ref,
            "options": plain(dict(spec.experiment.options)),
        }
        facts |= {"fusion": spec.fusion, "all_subsets": spec.all_subsets}
        facts["data_dir"] = None if spec.data_dir is None else str(spec.data_dir)
    setup = time.perf_counter() - started  # data, model, stage-1 weights
    settings = FitSettings(
        stage=spec.stage,
        seed=spec.seed,
        monitor=experiment.monitor,
        objective=experiment.objective,
        trainer=spec.trainer,
        scratch=spec.scratch,
        job=facts | {"init_from": list(spec.init_from), "config": asdict(spec.stage)},
        num_workers=spec.num_workers,
        progress=spec.progress,
        label=spec.label,
        name=job_stem(spec.group, spec.method, spec.seed),
        test=spec.test,
        callbacks=list(spec.callbacks),
    )
    result = fit_and_test(model, splits, settings)
    stage2 = method_base(spec.method) in STAGE2_METHODS
    if stage2 and experiment.objective is None and result.predictions is not None:
        result.metrics["mixture_acc"] = mixture_accuracy(result.predictions)  # the authors' intra test
    layout = {
        name: {
            "modalities": list(e.modalities),
            "handles_missing": bool(getattr(e, "handles_missing", False)),
        }
        for name, e in model.named_experts().items()
    }
    prior = model.log_prior
    return JobResult(
        metrics=result.metrics,
        state_dict=result.state_dict,
        hyper_parameters=result.hyper_parameters,
        predictions=result.predictions,
        curve=result.curve,
        epochs=result.epochs,
        phases={"setup": round(setup, 3), **result.phases},
        wall_time_s=round(time.perf_counter() - started, 2),
        experts=layout,
        log_prior=[float(v) for v in prior] if prior is not None and prior.dim() == 1 else None,
        majority=majority_rate(splits) if spec.test else None,
        preprocessing=of_splits(splits, experiment.modalities, experiment.classes(spec.group)).to_plain(),
    )


def load_stage_one(model: Any, init_from: dict[str, dict[str, Tensor] | Path]) -> None:
    """Start a product from its experts' stage-1 weights; weights of another model are refused, named."""
    state: dict[str, Tensor] = {}
    for weights in init_from.values():
        state |= weights if isinstance(weights, dict) else read_model_weights(weights)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        sources = [str(w) if isinstance(w, Path) else row for row, w in init_from.items()]
        first = str(err).split("\n\t")[1] if "\n\t" in str(err) else str(err)[:200]
        raise DataError(
            f"stage-1 weights {sources} do not fit this method's model ({first.strip()}); they belong to "
            "another experiment or options: delete those checkpoints and job records to rerun them"
        ) from err


def majority_rate(splits: Splits) -> float | None:
    """The share of the test split's most frequent class (``None`` without single-label test labels)."""
    labels = getattr(splits.test, "labels", None)
    if not (
        isinstance(labels, Tensor) and labels.dim() == 1 and len(labels) and not labels.is_floating_point()
    ):
        return None
    counts = torch.bincount(labels.long(), minlength=splits.num_classes)
    return float(counts.max()) / len(labels)


def training_labels(splits: Splits) -> Any:
    """The training labels, for the prior correction (in-memory splits have them; others are read once)."""
    labels = getattr(splits.train, "labels", None)
    if labels is not None:
        return labels
    return torch.stack([torch.as_tensor(splits.train[i][1]) for i in range(len(splits.train))])  # type: ignore[arg-type]
