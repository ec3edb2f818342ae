"""``i2m2 run``: every method, every seed, every group of an experiment; results written to files.

Layout of a run folder::

    results.json  results.csv  results.md  results.png   the tables (results.json is the stable contract)
    jobs/<group>__<method>__seed<k>.json                  one finished job's test metrics (for --resume)
    checkpoints/<group>__<method>__seed<k>.pt             its weights: state_dict + plain hyperparameters
    predictions/<group>__<method>__seed<k>.npz            its per-example test predictions
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_only
from tqdm.auto import tqdm

from i2m2.data.multimodal_dataset import DataSplits
from i2m2.errors import UserError
from i2m2.experiments.spec import Experiment, StageConfig
from i2m2.models.i2m2 import I2M2
from i2m2.models.methods import build_method
from i2m2.atomic import atomic_write_text, load_checkpoint, save_checkpoint
from i2m2.training.fit import fit_and_test, quiet_lightning
from i2m2.training.plan import Job, all_methods, plan_jobs
from i2m2.runs.plots import bar_chart
from i2m2.runs.predictions import job_stem, predictions_path, save_predictions
from i2m2.runs.results import build_rows, write_results
from i2m2.training.scale import ScaleConfig


def is_global_zero() -> bool:
    """Whether this process is rank 0 (always true without multi-process DDP)."""
    return getattr(rank_zero_only, "rank", 0) == 0


def build_job_model(experiment: Experiment, job: Job, group: str) -> I2M2:
    """The method's model, made of the experiment's expert builders."""
    builders = experiment.build_inter
    fusion = job.fusion or next(iter(builders))
    return build_method(
        job.base,
        experiment.modalities,
        unimodal=lambda m: experiment.build_unimodal(m, group),
        inter=lambda mods: builders[fusion](mods, group),
        num_classes=experiment.classes(group),
    )


def job_config(experiment: Experiment, job: Job, max_epochs: int | None) -> StageConfig:
    if job.stage == 2:
        config = experiment.finetune
    else:
        config = experiment.stage1_config(job.base.removeprefix("unimodal:"))
    return config if max_epochs is None else replace(config, max_epochs=max_epochs)


class Runner:
    """Runs (or resumes) one comparison into ``out``.

    Args:
        experiment: what to run.
        out: the run folder.
        seeds: the seeds (each gives a full comparison).
        methods: the rows to produce (default: all); products also run the stage-1 jobs they start from.
        data_dir: the dataset folder for experiments that read files.
        max_epochs: overrides every stage's epochs (smoke tests, quick looks).
        from_scratch: train intra and I2M2 jointly from random initialization (the paper's Table 5).
        prior_correction: products of K experts use the exact Eq. (3), removing K-1 copies of the
            training-label prior (off by default, as in the authors' code).
        resume: skip jobs whose results are already in ``out``.
        scale: accelerator/devices/strategy/nodes for the Trainer.
        epoch_progress: show per-epoch progress, a Lightning bar on a terminal and one plain line per
            epoch otherwise (off for many tiny jobs, as in the demo).
        log: where progress lines go when not on a terminal.
    """

    def __init__(
        self,
        experiment: Experiment,
        out: Path,
        seeds: Sequence[int] = (0, 1, 2),
        methods: Sequence[str] | None = None,
        data_dir: Path | None = None,
        max_epochs: int | None = None,
        from_scratch: bool = False,
        prior_correction: bool = False,
        resume: bool = False,
        scale: ScaleConfig | None = None,
        epoch_progress: bool = True,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.experiment = experiment
        self.out = Path(out)
        self.seeds = list(seeds)
        self.methods = list(methods) if methods else all_methods(experiment)
        self.data_dir = data_dir
        self.max_epochs = max_epochs
        self.from_scratch = from_scratch
        self.prior_correction = prior_correction
        self.resume = resume
        self.scale = scale or ScaleConfig()
        self.jobs = plan_jobs(experiment, self.methods, from_scratch)
        self._states: dict[str, dict[str, Any]] = {}  # this (group, seed)'s finished weights, by method
        self.interactive = sys.stderr.isatty()
        self.epoch_progress = epoch_progress and self.interactive
        self.epoch_lines = epoch_progress and not self.interactive
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self._check_out()

    def _check_out(self) -> None:
        if self.out.exists() and not self.out.is_dir():
            raise UserError(f"--out {self.out}: exists and is not a folder")
        if (self.out / "jobs").is_dir() and any((self.out / "jobs").iterdir()) and not self.resume:
            raise UserError(
                f"--out {self.out}: already holds a run; pass --resume to continue it, "
                "or choose another folder"
            )
        try:
            (self.out / "jobs").mkdir(parents=True, exist_ok=True)
            probe = self.out / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as err:
            raise UserError(f"--out {self.out}: not writable ({err.strerror or err})") from err

    def config(self) -> dict[str, Any]:
        e = self.experiment
        pretrain = (
            asdict(e.pretrain)
            if isinstance(e.pretrain, StageConfig)
            else {k: asdict(v) for k, v in e.pretrain.items()}
        )
        return {
            "description": e.description,
            "modalities": list(e.modalities),
            "num_classes": e.num_classes if isinstance(e.num_classes, int) else dict(e.num_classes),
            "groups": list(e.groups),
            "group_names": list(e.group_names),
            "seeds": self.seeds,
            "methods": self.methods,
            "monitor": e.monitor,
            "pretrain": pretrain,
            "finetune": asdict(e.finetune),
            "max_epochs_override": self.max_epochs,
            "from_scratch": self.from_scratch,
            "prior_correction": self.prior_correction,
            "data_dir": None if self.data_dir is None else str(self.data_dir),
            "scale": asdict(self.scale),
        }

    def run(self) -> dict[str, Any]:
        """Train and test every job, then write the tables and the chart. Returns results.json's content."""
        quiet_lightning()
        total = len(self.experiment.groups) * len(self.seeds) * len(self.jobs)
        bar = tqdm(total=total, desc=self.experiment.name, unit="job", disable=not self.interactive)
        started = time.perf_counter()
        job_metrics: dict[tuple[str, str, int], dict[str, float]] = {}
        job_costs: dict[tuple[str, str, int], dict[str, float]] = {}
        done = 0
        for group in self.experiment.groups:
            for seed in self.seeds:
                splits: DataSplits | None = None
                self._states.clear()  # stage-1 weights are only reused within one (group, seed)
                for job in self.jobs:
                    done += 1
                    stem = job_stem(group, job.method, seed)
                    record = self.out / "jobs" / f"{stem}.json"
                    if (
                        self.resume
                        and record.is_file()
                        and (self.out / "checkpoints" / f"{stem}.pt").is_file()
                    ):
                        finished = json.loads(record.read_text())
                        job_metrics[(group, job.method, seed)] = finished["metrics"]
                        job_costs[(group, job.method, seed)] = {
                            k: finished[k] for k in ("wall_time_s", "epochs") if k in finished
                        }
                        self._progress(bar, done, total, group, seed, job.method, "already done (resumed)")
                        continue
                    if splits is None:
                        splits = self.experiment.load_data(group, self.data_dir, seed)
                    t0 = time.perf_counter()
                    metrics, cost = self._run_job(job, group, seed, splits, stem, t0)
                    job_metrics[(group, job.method, seed)] = metrics
                    job_costs[(group, job.method, seed)] = cost
                    summary = " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k != "loss")
                    self._progress(
                        bar,
                        done,
                        total,
                        group,
                        seed,
                        job.method,
                        f"{summary} ({time.perf_counter() - t0:.1f} s)",
                    )
        bar.close()
        rows = build_rows(job_metrics, self.methods, self.experiment.groups, job_costs)
        config = self.config() | {
            "wall_time_s": round(time.perf_counter() - started, 1),  # this invocation
            # every job's own time, those finished before a --resume included
            "job_wall_time_s": round(sum(c.get("wall_time_s", 0.0) for c in job_costs.values()), 1),
        }
        if not is_global_zero():
            return {}
        results = write_results(self.out, self.experiment.name, rows, config)
        bar_chart(rows, self.out / "results.png", self.experiment.monitor, self.experiment.description)
        return results

    def _progress(
        self, bar: Any, done: int, total: int, group: str, seed: int, method: str, text: str
    ) -> None:
        where = f"{group} " if group else ""
        line = f"[{done}/{total}] {where}seed={seed} {method}: {text}"
        if self.interactive:
            bar.update(1)
            bar.write(line)
        else:
            self.log(line)

    def _run_job(
        self, job: Job, group: str, seed: int, splits: DataSplits, stem: str, started: float
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Train and test one job, save its files; its metrics and its cost (wall time, epochs)."""
        pl.seed_everything(seed, verbose=False)  # the initial weights are part of what a seed fixes
        model = build_job_model(self.experiment, job, group)
        if splits.num_classes != self.experiment.classes(group):
            raise UserError(
                f"{self.experiment.name} {group}: the data has {splits.num_classes} classes, "
                f"the experiment expects {self.experiment.classes(group)}"
            )
        if job.init_from:
            state: dict[str, Any] = {}
            for source in job.init_from:
                if source not in self._states:  # finished before a --resume
                    path = self.out / "checkpoints" / f"{job_stem(group, source, seed)}.pt"
                    self._states[source] = load_checkpoint(path)["state_dict"]
                state |= self._states[source]
            model.load_state_dict(state)
        if self.prior_correction and len(model.experts) > 1:
            model.set_prior_from_labels(splits.train.labels, splits.num_classes)
        config = job_config(self.experiment, job, self.max_epochs)
        where = f"{group} " if group else ""
        result = fit_and_test(
            model,
            splits,
            config,
            seed,
            self.experiment.monitor,
            self.scale,
            progress_bar=self.epoch_progress,
            epoch_lines=f"  {where}seed={seed} {job.method} " if self.epoch_lines else None,
        )
        self._states[job.method] = result.state_dict
        if not is_global_zero():  # under multi-process DDP every rank runs this loop; one writes
            return result.metrics, {}
        hyper = {
            "experiment": self.experiment.name,
            "method": job.method,
            "group": group,
            "seed": seed,
            "stage": job.stage,
            "init_from": list(job.init_from),
            "config": asdict(config),
        }
        save_checkpoint(self.out / "checkpoints" / f"{stem}.pt", result.state_dict, hyper)
        if result.predictions is not None:
            save_predictions(predictions_path(self.out, group, job.method, seed), result.predictions)
        wall_time = round(time.perf_counter() - started, 2)  # training, test and the files
        record = {
            "method": job.method,
            "group": group,
            "seed": seed,
            "metrics": result.metrics,
            "epochs": result.epochs,
            "wall_time_s": wall_time,
        }
        atomic_write_text(self.out / "jobs" / f"{stem}.json", json.dumps(record, indent=2) + "\n")
        return result.metrics, {"wall_time_s": wall_time, "epochs": float(result.epochs)}
