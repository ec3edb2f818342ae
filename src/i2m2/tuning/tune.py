"""Tune every method of an experiment with the same budget, selecting on validation only.

Stage 1 tunes each expert (each unimodal expert, the inter expert) on its own validation metric; stage 2
then tunes each product (intra, I2M2), every trial starting from the best stage-1 trial's weights of its
experts. Every method gets the same number of trials. A trial trains its method once per tuning seed and
group, through the run's executor (:func:`~i2m2.orchestration.job.run_job` with ``test=False``: the test
split is never read), and scores the mean of the best validation epoch's metric. A trial that diverges
fails and is recorded as such; the median pruner stops a trial whose validation metric trails the median
of earlier trials at the same epoch.

The grid sampler tries the grid's points in one seeded order and asks the study which points are taken,
so an interrupted tune continues with the same points an uninterrupted one would have tried.
"""

from __future__ import annotations

import itertools
import math
import random
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch

from i2m2.atomic import save_checkpoint
from i2m2.catalog import ExperimentRef
from i2m2.errors import UserError
from i2m2.experiment import Experiment, StageConfig
from i2m2.orchestration.executors import (
    RETRIES,
    Executor,
    LocalExecutor,
    ProcessExecutor,
    RayExecutor,
    WorkerDied,
)
from i2m2.orchestration.job import JobResult, JobSpec, forget_splits
from i2m2.orchestration.options import RunOptions
from i2m2.orchestration.plan import Job, all_methods, plan_jobs
from i2m2.orchestration.signals import stop_on_signals
from i2m2.runs.folder import MODEL_PREFIX, identity_hash, plain
from i2m2.runs.predictions import job_stem
from i2m2.training.finite import NonFiniteError
from i2m2.training.fit import quiet_lightning
from i2m2.tuning.space import Dimension, Space, StageSpace, parse_space
from i2m2.tuning.study import (
    OWNER,
    check_foreign_studies,
    check_later_studies,
    counted,
    interrupt,
    open_storage,
    open_study,
    optuna_module,
    owner,
    release_stale_trials,
    storage_url,
    study_name,
)

Sampler = Literal["grid", "tpe"]
Pruner = Literal["median", "none"]
WEIGHTS = "weights"  # DIR/weights/<job>.ckpt: the best stage-1 trial's weights, per group and seed


@dataclass
class TuneOptions:
    """How to tune (the run's options, :class:`RunOptions`, say which seeds, methods and executor).

    Args:
        trials: trials per method (>= 1); a grid smaller than that is tried whole.
        sampler: ``grid`` (every point of the space's grid, in a seeded order) or ``tpe`` (Optuna's
            Tree-structured Parzen Estimator over the ranges).
        storage: an Optuna storage URL shared by several workers (default: SQLite in DIR).
        pruner: ``median`` (stop a trial below the median of earlier trials at the same epoch) or ``none``.
        sampler_seed: seeds the grid's order and TPE.
    """

    trials: int = 20
    sampler: Sampler = "grid"
    storage: str | None = None
    pruner: Pruner = "median"
    sampler_seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 1:
            raise UserError(f"--trials: expected an integer >= 1, got {self.trials!r}")
        if self.sampler not in ("grid", "tpe"):
            raise UserError(f"--sampler: expected grid or tpe, got {self.sampler!r}")
        if self.pruner not in ("median", "none"):
            raise UserError(f"--pruner: expected median or none, got {self.pruner!r}")


@dataclass
class Best:
    """The best trial of one method: its settings and mean best-epoch validation metric."""

    method: str
    params: dict[str, float]
    value: float
    trial: int
    finished: int  # trials that count toward the budget


@dataclass
class TuneResult:
    """What a tune found and where it wrote it."""

    best: dict[str, Best]
    tuned: Path
    trials: Path
    chart: Path | None
    monitor: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Trial:
    """One trial in flight: its jobs' scores and weights as they come back."""

    trial: Any
    params: dict[str, float]
    keys: list[tuple[str, int]]
    scores: dict[tuple[str, int], float] = field(default_factory=dict)
    weights: dict[tuple[str, int], dict[str, torch.Tensor]] = field(default_factory=dict)
    hyper: dict[str, Any] = field(default_factory=dict)
    left: int = 0
    error: str | None = None
    pruned: bool = False
    started: float = field(default_factory=time.perf_counter)
    epochs: int = 0


class Tuner:
    """Runs (or continues) one tune into ``out``; see the module docstring."""

    def __init__(
        self,
        experiment: Experiment,
        out: Path,
        space: Space,
        tune: TuneOptions,
        run: RunOptions,
        reference: ExperimentRef | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.experiment, self.out, self.space, self.tune, self.run = experiment, Path(out), space, tune, run
        self.reference = reference
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        fusions = list(run.fusion or experiment.fusions())
        unknown = [f for f in fusions if f not in experiment.build_inter]
        if unknown:
            raise UserError(
                f"--fusion: unknown fusion(s) {unknown}; expected some of {list(experiment.build_inter)}"
            )
        if len(fusions) > 1:
            raise UserError(
                f"--fusion: a tuned recipe has one 'inter' entry; tune one fusion at a time, got {fusions}"
            )
        if run.from_scratch:
            raise UserError(
                "--from_scratch: tune tunes the two-stage recipe; its stage-2 jobs start from experts"
            )
        if run.data_dir is None and experiment.needs_data_dir:
            raise UserError(f"experiment '{experiment.name}' reads files: pass --data-dir DIR")
        self.fusions = fusions
        methods = list(run.methods or experiment.default_methods or all_methods(experiment, fusions))
        self.jobs = plan_jobs(experiment, methods, False, fusions)
        self.keys = [(g, s) for g in experiment.groups for s in run.seed_list]
        self.direction = "minimize" if experiment.monitor == "loss" else "maximize"
        self.url = storage_url(self.out, tune.storage)
        self.best: dict[str, Best] = {}
        self.studies: dict[str, Any] = {}

    # -- what each study tunes ------------------------------------------------------------------------

    def stage(self, method: str) -> Any:
        return self.experiment.stage_config(method, False, self.run.max_epochs)

    def identity(self, method: str, experts: dict[str, Any] | None = None) -> dict[str, Any]:
        """What a method's study tunes: a study made for anything else is refused."""
        dims = self.space.for_method(method)
        fixed = {k: v for k, v in asdict(self.stage(method)).items() if k not in dims}
        identity = {
            "experiment": self.experiment.name,
            "experiment_options": plain(self.run.experiment_options or {}),
            "method": method,
            "space": {n: d.text() for n, d in sorted(dims.items())},
            "sampler": self.tune.sampler,
            "sampler_seed": self.tune.sampler_seed,
            "seeds": self.run.seed_list,
            "groups": list(self.experiment.groups),
            "monitor": self.experiment.monitor,
            "fusion": self.fusions[0] if self.experiment.build_inter else None,
            "settings": plain(fixed),
        }
        if experts is not None:
            identity["experts"] = plain(experts)
        return identity

    def name(self, method: str, experts: dict[str, Any] | None = None) -> str:
        """A stage-2 study's name carries its experts' settings: better experts start a new study."""
        name = study_name(self.experiment.name, method)
        return name if experts is None else f"{name}@{identity_hash(plain(experts))[:10]}"

    # -- the tune -------------------------------------------------------------------------------------

    def prepare(self) -> Any:
        """Open the storage and check every stage-1 study before anything trains (nothing is written to
        DIR when the storage or a study is refused)."""
        own = self.tune.storage is None
        if own:
            if self.out.exists() and not self.out.is_dir():
                raise UserError(f"--out {self.out}: not a folder")
            self.out.mkdir(parents=True, exist_ok=True)
        storage = open_storage(self.url, own)
        where = self.where()
        if own:
            check_foreign_studies(storage, self.experiment.name, where)
        for job in self.jobs:
            if job.stage == 1:
                self.studies[job.method] = open_study(
                    storage, self.name(job.method), self.identity(job.method), self.direction, where
                )
        later = {self.name(j.method): self.identity(j.method) for j in self.jobs if j.stage == 2}
        check_later_studies(storage, later, where)
        return storage

    def where(self) -> str:
        """How messages name the studies' storage."""
        return str(self.out / "study.db") if self.tune.storage is None else f"--storage {self.url}"

    def __call__(self) -> TuneResult:
        from i2m2.tuning.report import write_reports

        quiet_lightning()
        storage = self.prepare()
        executor = self._executor()
        try:
            with stop_on_signals(
                f"the study in {self.url} keeps every finished trial; run the same tune again"
            ):
                for job in self.jobs:
                    if job.stage == 1:
                        self._tune_method(job, self.studies[job.method], executor, {})
                        write_reports(self)
                for job in self.jobs:
                    if job.stage == 2:
                        sources = self._experts_of(job, executor)
                        experts = {s: self.best[s].params for s in job.init_from}
                        where = self.where()
                        name = self.name(job.method, experts)
                        study = open_study(
                            storage, name, self.identity(job.method, experts), self.direction, where
                        )
                        self.studies[job.method] = study
                        self._tune_method(job, study, executor, sources)
                        write_reports(self)
        finally:
            executor.close()
            forget_splits()
        return write_reports(self)

    def _executor(self) -> Executor:
        run = self.run
        if run.executor == "local":
            return LocalExecutor()
        if self.reference is None:
            raise UserError(
                f"--executor {run.executor}: jobs run in other processes, which rebuild the experiment from "
                "its reference; run it as 'i2m2 tune NAME' or pass tune_experiment(ExperimentRef.of(...))"
            )
        if run.executor == "processes":
            gpus = torch.cuda.device_count() if run.gpus_per_job > 0 else 0
            workers = run.workers or max(1, gpus or 1)
            return ProcessExecutor(workers, gpus=gpus)
        return RayExecutor(run.ray_address, run.cpus_per_job, run.gpus_per_job)

    # -- one method -----------------------------------------------------------------------------------

    def _tune_method(
        self, job: Job, study: Any, executor: Executor, sources: dict[tuple[str, int], dict[str, Path]]
    ) -> None:
        dims = self.space.for_method(job.method)
        released = release_stale_trials(study)
        if released:
            self.log(f"{job.method}: {released} trial(s) of a stopped tune will run again")
        order = self._grid_order(dims) if self.tune.sampler == "grid" else None
        budget = self.tune.trials if order is None else min(self.tune.trials, len(order))
        if order is not None and len(order) < self.tune.trials and not counted(study):
            self.log(f"{job.method}: the grid has {len(order)} points; each is tried once")
        running: dict[Future[JobResult], tuple[_Trial, tuple[str, int]]] = {}
        queue: list[tuple[_Trial, tuple[str, int]]] = []
        tries: dict[tuple[int, tuple[str, int]], int] = {}
        mine: list[_Trial] = []
        try:
            while True:
                while len(running) < executor.slots:
                    if not queue:
                        if len(counted(study)) >= budget:
                            break
                        trial = self._ask(study, dims, order)
                        if trial is None:
                            break
                        mine.append(trial)
                        queue += [(trial, key) for key in trial.keys]
                    item = queue.pop(0)
                    running[executor.submit(self._spec(job, item[0], item[1], sources, study))] = item
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    trial, key = running.pop(future)
                    retry = self._collect(future, trial, key, tries)
                    if retry:
                        queue.insert(0, (trial, key))
                    elif trial.left == 0:
                        self._finish(job, study, trial)
                        mine.remove(trial)
        except BaseException:
            executor.cancel()
            for trial in mine:  # stopped before it finished: its point runs again next time
                interrupt(study, trial.trial._trial_id)
            raise
        self._note_best(job.method, study)

    def _sampler(self, study: Any) -> Any:
        """The sampler of the next trial. TPE is seeded afresh for each trial from the number of trials that
        count so far: it reads everything else from the study, so a stopped tune (its interrupted trials do
        not count) asks for the same points as one that ran through, and a continued one for new points."""
        optuna = optuna_module()
        if self.tune.sampler == "tpe":
            return optuna.samplers.TPESampler(seed=self.tune.sampler_seed + len(counted(study)))
        return optuna.samplers.RandomSampler(seed=self.tune.sampler_seed)  # every value is enqueued

    def _grid_order(self, dims: Mapping[str, Dimension]) -> list[dict[str, float]]:
        names = sorted(dims)
        points = [
            dict(zip(names, values, strict=True))
            for values in itertools.product(*(dims[n].grid() for n in names))
        ]
        random.Random(self.tune.sampler_seed).shuffle(points)
        return points

    def _ask(
        self, study: Any, dims: Mapping[str, Dimension], order: list[dict[str, float]] | None
    ) -> _Trial | None:
        """A new trial (the grid's next untaken point); ``None`` when the grid is exhausted."""
        if order is not None:
            taken = {_key(t.params or t.system_attrs.get("fixed_params", {})) for t in counted(study)}
            point = next((p for p in order if _key(p) not in taken), None)
            if point is None:
                return None
            study.enqueue_trial(point, skip_if_exists=False)
        study.sampler = self._sampler(study)
        trial = study.ask()
        trial.set_user_attr(OWNER, owner())
        params = {name: _suggest(trial, dim) for name, dim in sorted(dims.items())}
        return _Trial(trial, params, list(self.keys), left=len(self.keys))

    def _spec(
        self,
        job: Job,
        trial: _Trial,
        key: tuple[str, int],
        sources: dict[tuple[str, int], dict[str, Path]],
        study: Any,
    ) -> JobSpec:
        stage = replace(self.stage(job.method), **_typed(trial.params))
        callbacks: list[Any] = []
        if self.tune.pruner == "median":
            from i2m2.tuning.pruning import ReportToTrial

            offset = trial.keys.index(key) * stage.max_epochs
            callbacks.append(
                ReportToTrial(
                    self.url, study.study_name, trial.trial._trial_id, self.experiment.monitor, offset
                )
            )
        return self._validation_job(job, key, stage, dict(sources.get(key, {})), callbacks)

    def _validation_job(
        self,
        job: Job,
        key: tuple[str, int],
        stage: StageConfig,
        init_from: dict[str, Any] | None = None,
        callbacks: list[Any] | None = None,
    ) -> JobSpec:
        """One trial's job: trained and scored on validation only (``test=False``: the test split is never
        read while tuning)."""
        group, seed = key
        return JobSpec(
            experiment=self.reference or self.experiment,
            method=job.method,
            group=group,
            seed=seed,
            stage=stage,
            fusion=job.fusion,
            all_subsets=self.run.all_subsets,
            prior_correction=self.run.prior_correction,
            data_dir=self.run.data_dir,
            init_from=init_from or {},
            trainer=self.run.trainer,
            num_workers=self.run.num_workers,
            test=False,
            callbacks=callbacks or [],
        )

    def _collect(
        self, future: Future[JobResult], trial: _Trial, key: tuple[str, int], tries: dict[Any, int]
    ) -> bool:
        """Note one job's outcome; ``True`` when its worker died and it should run again."""
        optuna = optuna_module()
        try:
            result = future.result()
        except WorkerDied as err:
            tries[(trial.trial.number, key)] = tries.get((trial.trial.number, key), 0) + 1
            if tries[(trial.trial.number, key)] > RETRIES:
                raise UserError(
                    f"trial {trial.trial.number}: its worker died {RETRIES + 1} times ({err})"
                ) from err
            return True
        except optuna.TrialPruned:
            trial.pruned = True
        except NonFiniteError as err:  # a setting that makes training diverge is a result, not an error
            trial.error = str(err)
        else:
            score = result.metrics.get(f"val/{self.experiment.monitor}", math.nan)
            if not math.isfinite(score):
                trial.error = f"no finite validation {self.experiment.monitor}"
            trial.scores[key] = score
            trial.weights[key] = result.state_dict
            trial.hyper = result.hyper_parameters
            trial.epochs += result.epochs
        trial.left -= 1
        return False

    def _finish(self, job: Job, study: Any, trial: _Trial) -> None:
        """Tell the study how the trial ended; keep a stage-1 trial's weights while it is the best."""
        optuna = optuna_module()
        record = trial.trial
        record.set_user_attr("wall_time_s", round(time.perf_counter() - trial.started, 2))
        record.set_user_attr("epochs", trial.epochs)
        record.set_user_attr("scores", {f"{g}/seed{s}": v for (g, s), v in trial.scores.items()})
        shown = " ".join(f"{k}={v:g}" for k, v in trial.params.items())
        if trial.pruned:
            study.tell(record, state=optuna.trial.TrialState.PRUNED)
            self.log(f"{job.method} trial {record.number} [{shown}]: pruned")
            return
        if trial.error is not None:
            record.set_user_attr("error", trial.error[:500])
            study.tell(record, state=optuna.trial.TrialState.FAIL)
            self.log(f"{job.method} trial {record.number} [{shown}]: failed ({trial.error[:120]})")
            return
        value = sum(trial.scores.values()) / len(trial.scores)
        study.tell(record, value)
        self.log(f"{job.method} trial {record.number} [{shown}]: val {self.experiment.monitor} {value:.4f}")
        if job.stage == 1 and study.best_trial.number == record.number:
            for (group, seed), state in trial.weights.items():
                prefixed = {MODEL_PREFIX + k: v for k, v in state.items()}
                path = self.weights(job.method, group, seed)
                save_checkpoint(
                    path, prefixed, plain(trial.hyper), trial=record.number, study=study.study_name
                )

    def _note_best(self, method: str, study: Any) -> None:
        optuna = optuna_module()
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if not complete:
            raise UserError(
                f"{method}: none of its {len(counted(study))} trials finished (diverged or pruned); "
                "try lower learning rates (--space) or a gradient_clip_val"
            )
        best = study.best_trial
        self.best[method] = Best(
            method, dict(best.params), float(best.value), best.number, len(counted(study))
        )

    # -- stage 2 starts from the best experts -----------------------------------------------------------

    def weights(self, method: str, group: str, seed: int) -> Path:
        return self.out / WEIGHTS / f"{job_stem(group, method, seed)}.ckpt"

    def _experts_of(self, job: Job, executor: Executor) -> dict[tuple[str, int], dict[str, Path]]:
        """Each (group, seed)'s weights of the best trial of every expert the product starts from; an
        expert whose best trial ran elsewhere (a shared storage) is trained here once with its settings."""
        sources: dict[tuple[str, int], dict[str, Path]] = {key: {} for key in self.keys}
        for source in job.init_from:
            best = self.best[source]
            missing = [k for k in self.keys if _trial_of(self.weights(source, *k)) != best.trial]
            if missing:
                self._refit(source, best, missing, executor)
            for key in self.keys:
                sources[key][source] = self.weights(source, *key)
        return sources

    def _refit(self, method: str, best: Best, keys: list[tuple[str, int]], executor: Executor) -> None:
        self.log(f"{method}: training its best trial {best.trial} here (its weights are not in {self.out})")
        base = next(j for j in self.jobs if j.method == method)
        stage = replace(self.stage(method), **_typed(best.params))
        for group, seed in keys:
            spec = self._validation_job(base, (group, seed), stage)
            result = executor.submit(spec).result()
            prefixed = {MODEL_PREFIX + k: v for k, v in result.state_dict.items()}
            save_checkpoint(
                self.weights(method, group, seed), prefixed, plain(result.hyper_parameters), trial=best.trial
            )


def _key(params: Mapping[str, Any]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((k, float(v)) for k, v in params.items()))


def _suggest(trial: Any, dim: Dimension) -> float:
    if dim.values is not None:
        return float(trial.suggest_categorical(dim.name, list(dim.values)))
    if dim.name == "batch_size":
        return float(trial.suggest_int(dim.name, int(dim.low), int(dim.high), log=dim.log))
    return float(trial.suggest_float(dim.name, dim.low, dim.high, log=dim.log))


def _typed(params: Mapping[str, float]) -> dict[str, Any]:
    return {k: int(v) if k == "batch_size" else float(v) for k, v in params.items()}


def _trial_of(path: Path) -> int | None:
    """The trial whose weights a checkpoint in DIR/weights holds (``None``: none there)."""
    if not path.is_file():
        return None
    try:
        trial = torch.load(path, map_location="cpu", weights_only=True).get("trial")
    except Exception:  # unreadable: trained again
        return None
    return trial if isinstance(trial, int) else None


def tune_experiment(
    experiment: Experiment | ExperimentRef,
    out: Path | str,
    space: Space | Mapping[str, Any] | None = None,
    trials: int = 20,
    sampler: Sampler = "grid",
    storage: str | None = None,
    pruner: Pruner = "median",
    sampler_seed: int = 0,
    options: RunOptions | None = None,
    log: Callable[[str], None] | None = None,
    **option_values: Any,
) -> TuneResult:
    """Tune every method of ``experiment`` with the same budget; write ``out/tuned.yaml`` and more.

    ``space`` maps keys as on the command line (``{"pretrain.lr": "1e-5:1e-1:log"}`` or nested
    ``{"experts": {"audio": {"weight_decay": [0, 1e-4]}}}``) onto the paper's default space. ``options``
    (or their :class:`RunOptions` fields as keywords: ``seeds``, ``methods``, ``max_epochs``, ``executor``,
    ...) say how each trial runs; tuning uses one seed unless told otherwise. The result's ``tuned`` file
    is a recipe ``i2m2 run EXPERIMENT --config out/tuned.yaml`` reads as is; ``out`` also gets
    ``trials.csv``, ``tuning.png`` and the study (``study.db``), which a second call continues.
    """
    tune = TuneOptions(trials, sampler, storage, pruner, sampler_seed)
    if options is None:
        options = RunOptions(**({"seeds": 1} | option_values))
    elif option_values:
        options = replace(options, **option_values)
    reference = experiment if isinstance(experiment, ExperimentRef) else None
    built = experiment.build() if isinstance(experiment, ExperimentRef) else experiment
    if reference is not None and options.experiment_options is None:
        options = replace(options, experiment_options=dict(reference.options))
    parsed = parse_space(
        space if not isinstance(space, StageSpace) else {"pretrain": space}, built.modalities
    )
    return Tuner(built, Path(out), parsed, tune, options, reference, log)()
