"""The driver of a comparison: every method, seed and group of an experiment, trained with the two-stage
recipe.

It plans the jobs (:mod:`~i2m2.orchestration.plan`), hands each one its explicit inputs
(:class:`~i2m2.orchestration.job.JobSpec`), runs it (:func:`~i2m2.orchestration.job.run_job`) and alone
writes what comes back into the run folder (:class:`~i2m2.runs.folder.RunFolder`). :func:`run_experiment`
is the Python entry point (``i2m2 run`` calls it too). ``__all__`` includes :class:`RunOptions`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor
from tqdm.auto import tqdm

from i2m2.catalog import ExperimentRef
from i2m2.errors import UserError
from i2m2.experiment import Experiment
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
from i2m2.orchestration.workers import usable_cores
from i2m2.runs.fingerprint import data_fingerprint
from i2m2.runs.folder import RunFolder, plain, run_record
from i2m2.runs.results import build_rows
from i2m2.training.fit import quiet_lightning
from i2m2.training.trainer_options import joining_nodes


def is_global_zero() -> bool:
    """Whether this process is rank 0 (always true without multi-process DDP)."""
    return getattr(rank_zero_only, "rank", 0) == 0


class Comparison:
    """Runs (or resumes) one comparison into a run folder.

    Args:
        experiment: what to run.
        folder: where its files go.
        options: how to run it.
        epoch_progress: show per-epoch progress, a Lightning bar on a terminal and one plain line per
            epoch otherwise (off for many tiny jobs, as in the demo).
        log: where progress lines go when not on a terminal.
        experiment_ref: how another process rebuilds the experiment (``i2m2 run`` knows it; an
            experiment object from Python has none, and its jobs run in this process).
    """

    def __init__(
        self,
        experiment: Experiment,
        folder: RunFolder,
        options: RunOptions,
        epoch_progress: bool = True,
        log: Callable[[str], None] | None = None,
        experiment_ref: ExperimentRef | None = None,
    ) -> None:
        self.experiment = experiment
        self.experiment_ref = experiment_ref
        self.folder = folder
        self.options = options
        self.fusions = self._fusions()
        self.methods = list(
            options.methods or experiment.default_methods or all_methods(experiment, self.fusions)
        )
        self.jobs = plan_jobs(experiment, self.methods, options.from_scratch, self.fusions)
        if options.all_subsets and len(experiment.modalities) < 3:
            raise UserError(f"--all-subsets needs three or more modalities; '{experiment.name}' has two")
        if options.data_dir is None and experiment.needs_data_dir:
            raise UserError(f"experiment '{experiment.name}' reads files: pass --data-dir DIR")
        # What analyses need to rebuild products from the saved per-expert predictions: each method's
        # experts (the modalities each reads, whether it handles missing ones itself) and, with the prior
        # correction, the log prior of each (group, seed); and each group's chance and majority accuracy.
        self._experts: dict[str, dict[str, dict[str, Any]]] = {}
        self._log_priors: dict[str, dict[str, list[float]]] = {}
        self._majority: dict[str, dict[int, float]] = {}
        self.interactive = sys.stderr.isatty()
        self.epoch_progress = epoch_progress and self.interactive
        self.epoch_lines = epoch_progress and not self.interactive
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))

    def _fusions(self) -> list[str]:
        offered = list(self.experiment.build_inter)
        chosen = list(self.options.fusion or self.experiment.fusions())
        unknown = [f for f in chosen if f not in offered]
        if unknown:
            raise UserError(
                f"--fusion: unknown fusion(s) {unknown} for '{self.experiment.name}'; expected {offered}"
            )
        if len(set(chosen)) != len(chosen):
            raise UserError(f"--fusion: {chosen} names a fusion more than once")
        return chosen

    def config(self) -> dict[str, Any]:
        """What was run, in plain values (results.json's ``config``)."""
        e, o = self.experiment, self.options
        return {
            "description": e.description,
            "modalities": list(e.modalities),
            "num_classes": e.num_classes if isinstance(e.num_classes, int) else dict(e.num_classes),
            "groups": list(e.groups),
            "group_names": list(e.group_names),
            "seeds": o.seed_list,
            "methods": self.methods,
            "fusions": self.fusions,
            "monitor": e.monitor,
            "recipe": asdict(e.recipe),
            "max_epochs_override": o.max_epochs,
            "from_scratch": o.from_scratch,
            "prior_correction": o.prior_correction,
            "all_subsets": o.all_subsets,
            "data_dir": None if o.data_dir is None else str(o.data_dir),
            "experiment_options": plain(o.experiment_options or {}),
            "trainer": o.trainer,
            "title": self.title(),
            "experts": self._experts,
            "log_priors": self._log_priors,
            "levels": self.levels(),
            "analyses": None if e.analyses is None else list(e.analyses),
        }

    def title(self) -> str:
        """The chart's title: the experiment, where its data came from, and the seeds."""
        e, o = self.experiment, self.options
        name = None if o.data_dir is None else o.data_dir.name or str(o.data_dir)
        source = f"; data: {name}" if name and name not in e.description else ""
        seeds = f"{o.seeds} seed{'s' if o.seeds > 1 else ''}"
        if o.first_seed:
            seeds += f" from seed {o.first_seed}"
        subsets = "; one inter expert per subset (--all_subsets)" if o.all_subsets else ""
        simulated = "simulated data: " if e.simulated else ""
        return f"{e.name}: {simulated}{e.description}{source} ({seeds}, test set{subsets})"

    def levels(self) -> dict[str, dict[str, float]]:
        """Per group: chance accuracy 1/C and the majority-class rate of the test labels (mean over the
        seeds whose data was loaded in this invocation; groups without single-label test labels have none)."""
        return {
            g: {"chance": 1.0 / self.experiment.classes(g), "majority": sum(v.values()) / len(v)}
            for g, v in self._majority.items()
            if v
        }

    def run(self) -> dict[str, Any]:
        """Train and test every job, then write the tables and the chart. Returns results.json's content."""
        quiet_lightning()
        options = self.options
        waiting = joining_nodes(options.trainer)
        if waiting is not None:
            self.log(waiting)
        record = run_record(self.experiment.name, self.config(), options.experiment_options, self.data())
        self.folder.prepare(record)  # lock the folder; refuse another run's or a user's files
        try:
            with stop_on_signals(f"finished jobs are kept in {self.folder.path}; continue with --resume"):
                return self._run()
        finally:
            forget_splits()
            self.folder.release()

    def data(self) -> dict[str, str] | None:
        """The fingerprint of the files under ``--data_dir`` (folders the run writes into left out)."""
        options = self.options
        written = [Path(v) for v in (options.experiment_options or {}).values() if isinstance(v, str | Path)]
        return data_fingerprint(options.data_dir, [p for p in written if p.is_dir()])

    def _run(self) -> dict[str, Any]:
        experiment, seeds = self.experiment, self.options.seed_list
        keys = [(g, job, s) for g in experiment.groups for s in seeds for job in self.jobs]
        self._total, self._done = len(keys), 0
        self._bar = tqdm(total=self._total, desc=experiment.name, unit="job", disable=not self.interactive)
        started = time.perf_counter()
        self._metrics: dict[tuple[str, str, int], dict[str, float]] = {}
        self._costs: dict[tuple[str, str, int], dict[str, float]] = {}
        self._weights: dict[tuple[str, str, int], dict[str, Tensor] | Path] = {}  # finished, by job
        todo = [key for key in keys if not self._resumed(*key)]
        executor = self._executor(todo)
        try:
            self._schedule(todo, executor)
        except BaseException:
            executor.cancel()  # a signal or a failed job: running jobs stop, finished ones are kept
            raise
        finally:
            executor.close()
            self._bar.close()
        rows = build_rows(self._metrics, self.methods, experiment.groups, self._costs)
        config = self.config() | {
            "wall_time_s": round(time.perf_counter() - started, 1),  # this invocation
            # every job's own time, those finished before a --resume included
            "job_wall_time_s": round(sum(c.get("wall_time_s", 0.0) for c in self._costs.values()), 1),
        }
        if not is_global_zero():
            return {}
        return self.folder.write_results(
            experiment.name, rows, config, experiment.monitor, config["title"], config["levels"]
        )

    def _resumed(self, group: str, job: Job, seed: int) -> bool:
        """Whether the job finished in an earlier invocation (``--resume``); its record is then used."""
        key = (group, job.method, seed)
        stem = self.folder.stem(*key)
        facts = {"method": job.method, "group": group, "seed": seed}
        finished = self.folder.finished_job(stem, facts) if self.options.resume else None
        if stem in self.folder.unreadable:
            self._line(key, self.folder.unreadable.pop(stem))
        if finished is None:
            return False
        self._metrics[key] = {k: float("nan") if v is None else v for k, v in finished["metrics"].items()}
        self._note_record(group, seed, job.method, finished)
        self._costs[key] = {k: finished[k] for k in ("wall_time_s", "epochs") if k in finished}
        self._weights[key] = self.folder.checkpoint(stem)
        self._finished(key, "already done (resumed)")
        return True

    def _executor(self, todo: list[tuple[str, Job, int]]) -> Executor:
        options = self.options
        if options.executor == "local" or not todo:
            return LocalExecutor()
        if self.experiment_ref is None:
            raise UserError(
                f"--executor {options.executor}: jobs run in other processes, which rebuild the experiment "
                "from its reference; run it as 'i2m2 run NAME' or 'FILE.py:factory', or pass "
                "run_experiment(ExperimentRef.of(...))"
            )
        if options.executor == "processes":
            import torch

            gpus = torch.cuda.device_count() if options.gpus_per_job > 0 else 0
            workers = options.workers or max(1, gpus or usable_cores())
            return ProcessExecutor(min(workers, len(todo)), gpus=gpus)
        return RayExecutor(options.ray_address, options.cpus_per_job, options.gpus_per_job)

    def _schedule(self, todo: list[tuple[str, Job, int]], executor: Executor) -> None:
        """Run every job once the stage-1 jobs it starts from have finished, ``executor.slots`` at a time."""
        waiting = list(todo)
        running: dict[Future[JobResult], tuple[str, Job, int]] = {}
        tries: dict[tuple[str, str, int], int] = {}
        while waiting or running:
            for item in [w for w in waiting if self._ready(*w)]:
                if len(running) >= executor.slots:
                    break
                waiting.remove(item)
                running[executor.submit(self.job_spec(item[1], item[0], item[2], self._sources(*item)))] = (
                    item
                )
            self._show_running(running.values())
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                group, job, seed = running.pop(future)
                key = (group, job.method, seed)
                try:
                    result = future.result()
                except WorkerDied as err:
                    tries[key] = tries.get(key, 0) + 1
                    if tries[key] > RETRIES:
                        raise UserError(
                            f"{job.method} seed={seed}: its worker died {tries[key]} times ({err})"
                        ) from err
                    self._line(key, f"its worker died ({err}); running it again")
                    waiting.insert(0, (group, job, seed))
                    continue
                except torch_distributed_errors() as err:  # a multi-node run whose other nodes never came
                    raise UserError(f"the other nodes did not join: {str(err).splitlines()[0]}") from err
                self._weights[key] = result.state_dict
                self._keep(job, group, seed, self.folder.stem(*key), result)
                self._metrics[key] = result.metrics
                self._costs[key] = {"wall_time_s": result.wall_time_s, "epochs": float(result.epochs)}
                summary = " ".join(f"{k}={v:.4f}" for k, v in result.metrics.items() if k != "loss")
                self._finished(key, f"{summary} ({result.wall_time_s:.1f} s)")

    def _ready(self, group: str, job: Job, seed: int) -> bool:
        return all((group, source, seed) in self._weights for source in job.init_from)

    def _sources(self, group: str, job: Job, seed: int) -> dict[str, dict[str, Tensor] | Path]:
        return {source: self._weights[(group, source, seed)] for source in job.init_from}

    def job_spec(
        self, job: Job, group: str, seed: int, weights: dict[str, dict[str, Tensor] | Path]
    ) -> JobSpec:
        """Everything one job needs, explicit (the stage-1 weights it starts from included)."""
        options = self.options
        where = f"{group} " if group else ""
        return JobSpec(
            experiment=self.experiment_ref or self.experiment,
            method=job.method,
            group=group,
            seed=seed,
            stage=self.experiment.stage_config(job.method, options.from_scratch, options.max_epochs),
            fusion=job.fusion,
            all_subsets=options.all_subsets,
            prior_correction=options.prior_correction,
            data_dir=options.data_dir,
            init_from=dict(weights),
            trainer=options.trainer,
            num_workers=options.num_workers,
            progress="bar" if self.epoch_progress else "lines" if self.epoch_lines else "none",
            label=f"  {where}seed={seed} {job.method} ",
        )

    def _keep(self, job: Job, group: str, seed: int, stem: str, result: JobResult) -> None:
        """Write one finished job's files: checkpoint, curve and predictions, then its record, last."""
        record = result.record()
        self._note_record(group, seed, job.method, record)
        if result.majority is not None:
            self._majority.setdefault(group, {})[seed] = result.majority
        if not is_global_zero():  # under multi-process DDP every rank runs this loop; one writes
            return
        facts = {"experiment": self.experiment.name, "method": job.method, "group": group, "seed": seed}
        self.folder.save_checkpoint(stem, result.state_dict, result.hyper_parameters)
        self.folder.save_curve(stem, result.curve)
        if result.preprocessing is not None:
            self.folder.save_preprocessing(stem, result.preprocessing)
        if result.predictions is not None:
            self.folder.save_predictions(group, job.method, seed, result.predictions)
        self.folder.save_job(stem, facts | record)

    def _note_record(self, group: str, seed: int, method: str, record: dict[str, Any]) -> None:
        """Keep what a job record says about its experts and prior (jobs finished before --resume)."""
        if isinstance(record.get("experts"), dict):
            self._experts[method] = record["experts"]
        if isinstance(record.get("log_prior"), list):
            self._log_priors.setdefault(group, {})[str(seed)] = record["log_prior"]

    def _finished(self, key: tuple[str, str, int], text: str) -> None:
        """One job done: the bar moves on a terminal; one line per job otherwise."""
        self._done += 1
        self._line(key, text, f"[{self._done}/{self._total}] ")
        if self.interactive:
            self._bar.update(1)

    def _line(self, key: tuple[str, str, int], text: str, counter: str = "") -> None:
        group, method, seed = key
        where = f"{group} " if group else ""
        line = f"{counter}{where}seed={seed} {method}: {text}"
        if self.interactive:
            self._bar.write(line)
        else:
            self.log(line)

    def _show_running(self, running: Any) -> None:
        """The bar names the jobs running now (several with a parallel executor)."""
        if self.interactive:
            names = [f"{g + ' ' if g else ''}s{s} {job.method}" for g, job, s in running]
            self._bar.set_postfix_str(
                ", ".join(names[:4]) + (f" +{len(names) - 4}" if len(names) > 4 else "")
            )


def torch_distributed_errors() -> tuple[type[BaseException], ...]:
    import torch.distributed

    return (torch.distributed.DistStoreError,)


def run_experiment(
    experiment: Experiment | ExperimentRef,
    out: Path | str,
    options: RunOptions | None = None,
    epoch_progress: bool = True,
    **option_values: Any,
) -> list[dict[str, Any]]:
    """Run the whole comparison (stage 1, stage 2, every method and seed) and return results.json's rows.

    ``experiment`` is an :class:`Experiment`, or an :class:`~i2m2.catalog.ExperimentRef` (a name,
    ``FILE.py:factory`` or ``module:factory`` with the factory's options), which the ``processes`` and
    ``ray`` executors need to rebuild it where jobs run. Options are a :class:`RunOptions` or its fields
    as keywords, e.g. ``run_experiment(my_experiment, "runs/mine", seeds=3, methods=["intra", "i2m2"])``.
    The run folder ``out`` gets results.json/.csv/.md, a chart, checkpoints, curves and predictions.
    """
    if options is None:
        options = RunOptions(**option_values)
    elif option_values:
        options = replace(options, **option_values)
    reference = experiment if isinstance(experiment, ExperimentRef) else None
    built = experiment.build() if isinstance(experiment, ExperimentRef) else experiment
    if reference is not None and options.experiment_options is None:
        options = replace(options, experiment_options=dict(reference.options))
    folder = RunFolder(out, options.resume)
    results = Comparison(built, folder, options, epoch_progress, experiment_ref=reference).run()
    return list(results.get("rows", []))


__all__ = ["Comparison", "RunOptions", "run_experiment"]
