"""The whole comparison: every method, seed and group of an experiment, trained with the two-stage recipe.

``__all__`` includes :class:`RunOptions` (defined in :mod:`i2m2.training.options`) for the API's users.

:func:`run_experiment` is the Python entry point (``i2m2 run`` calls it too). The job loop lives here;
where its files go is :class:`~i2m2.runs.folder.RunFolder`'s business.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_only
from tqdm.auto import tqdm

from i2m2.errors import UserError
from i2m2.experiment import Experiment, Splits, StageConfig
from i2m2.metrics import mixture_accuracy
from i2m2.models.i2m2 import I2M2
from i2m2.models.methods import build_method
from i2m2.runs.folder import RunFolder, run_record
from i2m2.runs.results import build_rows
from i2m2.training.fit import fit_and_test, quiet_lightning
from i2m2.training.options import RunOptions
from i2m2.training.plan import Job, all_methods, plan_jobs
from i2m2.training.signals import stop_on_signals


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
    """

    def __init__(
        self,
        experiment: Experiment,
        folder: RunFolder,
        options: RunOptions,
        epoch_progress: bool = True,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.experiment = experiment
        self.folder = folder
        self.options = options
        self.fusions = self._fusions()
        self.methods = list(
            options.methods or experiment.default_methods or all_methods(experiment, self.fusions)
        )
        self.jobs = plan_jobs(experiment, self.methods, options.from_scratch, self.fusions)
        if options.all_subsets and len(experiment.modalities) < 3:
            raise UserError(f"--all-subsets needs three or more modalities; '{experiment.name}' has two")
        options.scale.check_available()
        if options.data_dir is None and experiment.needs_data_dir:
            raise UserError(f"experiment '{experiment.name}' reads files: pass --data-dir DIR")
        self._weights: dict[str, dict[str, Any]] = {}  # this (group, seed)'s finished weights, by method
        # What analyses need to rebuild products from the saved per-expert predictions: each method's
        # experts (the modalities each reads, whether it handles missing ones itself) and, with the prior
        # correction, the log prior of each (group, seed); and each group's chance and majority accuracy.
        self._experts: dict[str, dict[str, dict[str, Any]]] = {}
        self._log_priors: dict[str, dict[str, list[float]]] = {}
        self._majority: dict[str, list[float]] = {}
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
            "scale": asdict(o.scale),
            "title": self.title(),
            "experts": self._experts,
            "log_priors": self._log_priors,
            "levels": self.levels(),
        }

    def title(self) -> str:
        """The chart's title: the experiment, where its data came from, and the seeds."""
        e, o = self.experiment, self.options
        name = None if o.data_dir is None else o.data_dir.name or str(o.data_dir)
        source = f"; data: {name}" if name and name not in e.description else ""
        seeds = f"{o.seeds} seed{'s' if o.seeds > 1 else ''}"
        if o.first_seed:
            seeds += f" from seed {o.first_seed}"
        return f"{e.name}: {e.description}{source} ({seeds}, test set)"

    def levels(self) -> dict[str, dict[str, float]]:
        """Per group: chance accuracy 1/C and the majority-class rate of the test labels (mean over the
        seeds whose data was loaded in this invocation; groups without single-label test labels have none)."""
        return {
            g: {"chance": 1.0 / self.experiment.classes(g), "majority": sum(v) / len(v)}
            for g, v in self._majority.items()
            if v
        }

    def _note_data(self, group: str, splits: Splits) -> None:
        import torch

        labels = getattr(splits.test, "labels", None)
        if (
            isinstance(labels, torch.Tensor)
            and labels.dim() == 1
            and len(labels)
            and not labels.is_floating_point()
        ):
            counts = torch.bincount(labels.long(), minlength=splits.num_classes)
            self._majority.setdefault(group, []).append(float(counts.max()) / len(labels))

    def run(self) -> dict[str, Any]:
        """Train and test every job, then write the tables and the chart. Returns results.json's content."""
        quiet_lightning()
        record = run_record(self.experiment.name, self.config(), self.options.experiment_options)
        self.folder.prepare(record)  # lock the folder; refuse another run's or a user's files
        try:
            with stop_on_signals(f"finished jobs are kept in {self.folder.path}; continue with --resume"):
                return self._run()
        finally:
            self.folder.release()

    def _run(self) -> dict[str, Any]:
        experiment, seeds = self.experiment, self.options.seed_list
        total = len(experiment.groups) * len(seeds) * len(self.jobs)
        bar = tqdm(total=total, desc=experiment.name, unit="job", disable=not self.interactive)
        started = time.perf_counter()
        metrics: dict[tuple[str, str, int], dict[str, float]] = {}
        costs: dict[tuple[str, str, int], dict[str, float]] = {}
        done = 0
        for group in experiment.groups:
            for seed in seeds:
                splits: Splits | None = None
                self._weights.clear()  # stage-1 weights are only reused within one (group, seed)
                for job in self.jobs:
                    done += 1
                    key = (group, job.method, seed)
                    stem = self.folder.stem(*key)
                    finished = self.folder.finished_job(stem) if self.options.resume else None
                    if finished is not None:
                        metrics[key] = finished["metrics"]
                        self._note_record(group, seed, job.method, finished)
                        costs[key] = {k: finished[k] for k in ("wall_time_s", "epochs") if k in finished}
                        self._progress(bar, done, total, key, "already done (resumed)")
                        continue
                    if splits is None:
                        splits = experiment.load_data(group, self.options.data_dir, seed)
                        self._note_data(group, splits)
                    t0 = time.perf_counter()
                    metrics[key], costs[key] = self._run_job(job, group, seed, splits, stem, t0)
                    summary = " ".join(f"{k}={v:.4f}" for k, v in metrics[key].items() if k != "loss")
                    self._progress(bar, done, total, key, f"{summary} ({time.perf_counter() - t0:.1f} s)")
        bar.close()
        rows = build_rows(metrics, self.methods, experiment.groups, costs)
        config = self.config() | {
            "wall_time_s": round(time.perf_counter() - started, 1),  # this invocation
            # every job's own time, those finished before a --resume included
            "job_wall_time_s": round(sum(c.get("wall_time_s", 0.0) for c in costs.values()), 1),
        }
        if not is_global_zero():
            return {}
        return self.folder.write_results(
            experiment.name, rows, config, experiment.monitor, config["title"], config["levels"]
        )

    def _note_record(self, group: str, seed: int, method: str, record: dict[str, Any]) -> None:
        """Keep what a job record says about its experts and prior (jobs finished before --resume)."""
        if isinstance(record.get("experts"), dict):
            self._experts[method] = record["experts"]
        if isinstance(record.get("log_prior"), list):
            self._log_priors.setdefault(group, {})[str(seed)] = record["log_prior"]

    def _progress(self, bar: Any, done: int, total: int, key: tuple[str, str, int], text: str) -> None:
        group, method, seed = key
        where = f"{group} " if group else ""
        line = f"[{done}/{total}] {where}seed={seed} {method}: {text}"
        if self.interactive:
            bar.update(1)
            bar.write(line)
        else:
            self.log(line)

    def build_model(self, job: Job, group: str) -> I2M2:
        """The method's model, made of the experiment's expert builders."""
        e = self.experiment
        classes = e.classes(group)
        fusion = job.fusion or self.fusions[0]
        return build_method(
            job.base,
            e.modalities,
            unimodal=lambda m: e.build_unimodal(m, classes, group),
            inter=lambda mods: e.build_inter[fusion](mods, classes, group),
            all_subsets=self.options.all_subsets,
            num_classes=classes,
            num_tasks=e.objective.num_tasks if e.objective is not None else None,
        )

    def stage_config(self, job: Job) -> StageConfig:
        """Stage 2 fine-tunes; a product trained from scratch instead gets the stage-1 epoch budget (the
        fine-tuning budget assumes pretrained experts, so it would starve the from-scratch row)."""
        recipe = self.experiment.recipe
        if job.stage == 2:
            scratch = replace(
                recipe.finetune, max_epochs=recipe.pretrain.max_epochs, patience=recipe.pretrain.patience
            )
            config = recipe.stage2(job.base, scratch if self.options.from_scratch else None)
        else:
            config = recipe.stage1(job.base.removeprefix("unimodal:"))
        return (
            config if self.options.max_epochs is None else replace(config, max_epochs=self.options.max_epochs)
        )

    def _run_job(
        self, job: Job, group: str, seed: int, splits: Splits, stem: str, started: float
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Train and test one job, save its files; its metrics and its cost (wall time, epochs)."""
        pl.seed_everything(seed, verbose=False)  # the initial weights are part of what a seed fixes
        setup_started = time.perf_counter()
        model = self.build_model(job, group)
        expected = self.experiment.classes(group)
        if splits.num_classes != expected:
            raise UserError(
                f"{self.experiment.name} {group}: the data has {splits.num_classes} classes, "
                f"the experiment expects {expected}"
            )
        found = getattr(splits.train, "modalities", None)
        if found is not None and set(found) != set(self.experiment.modalities):
            raise UserError(
                f"{self.experiment.name} {group}: the data has modalities {list(found)}, "
                f"the experiment declares {list(self.experiment.modalities)}"
            )
        if job.init_from:
            state: dict[str, Any] = {}
            for source in job.init_from:
                if source not in self._weights:  # finished before a --resume
                    self._weights[source] = self.folder.load_weights(self.folder.stem(group, source, seed))
                state |= self._weights[source]
            model.load_state_dict(state)
        if self.options.prior_correction and len(model.experts) > 1:
            model.set_prior_from_labels(training_labels(splits), splits.num_classes)
        config = self.stage_config(job)
        where = f"{group} " if group else ""
        facts = {"experiment": self.experiment.name, "method": job.method, "group": group, "seed": seed}
        setup = time.perf_counter() - setup_started  # building the model, loading stage-1 weights
        result = fit_and_test(
            model,
            splits,
            config,
            seed,
            self.experiment.monitor,
            self.options.scale,
            progress_bar=self.epoch_progress,
            epoch_lines=f"  {where}seed={seed} {job.method} " if self.epoch_lines else None,
            checkpoint=self.folder.checkpoint(stem),
            log_dir=self.folder.log_dir(stem),
            job=facts | {"stage": job.stage, "init_from": list(job.init_from), "config": asdict(config)},
            num_workers=self.options.num_workers,
            objective=self.experiment.objective,
        )
        if job.stage == 2 and self.experiment.objective is None and result.predictions is not None:
            result.metrics["mixture_acc"] = mixture_accuracy(result.predictions)  # the authors' intra test
        self._weights[job.method] = result.state_dict
        layout = {
            name: {
                "modalities": list(e.modalities),
                "handles_missing": bool(getattr(e, "handles_missing", False)),
            }
            for name, e in model.named_experts().items()
        }
        extra: dict[str, Any] = {"experts": layout}
        if model.log_prior is not None and model.log_prior.dim() == 1:
            extra["log_prior"] = [float(v) for v in model.log_prior]
        self._note_record(group, seed, job.method, extra)
        if not is_global_zero():  # under multi-process DDP every rank runs this loop; one writes
            return result.metrics, {}
        if result.predictions is not None:
            self.folder.save_predictions(group, job.method, seed, result.predictions)
        wall_time = round(time.perf_counter() - started, 2)  # training, test and the files
        record = (
            facts | {"metrics": result.metrics, "epochs": result.epochs, "wall_time_s": wall_time} | extra
        )
        record["phases_s"] = {"setup": round(setup, 3), **result.phases}
        self.folder.save_job(stem, record)
        return result.metrics, {"wall_time_s": wall_time, "epochs": float(result.epochs)}


def training_labels(splits: Splits) -> Any:
    """The training labels, for the prior correction (in-memory splits have them; others are read once)."""
    labels = getattr(splits.train, "labels", None)
    if labels is not None:
        return labels
    import torch

    return torch.stack([torch.as_tensor(splits.train[i][1]) for i in range(len(splits.train))])  # type: ignore[arg-type]


def run_experiment(
    experiment: Experiment,
    out: Path | str,
    options: RunOptions | None = None,
    epoch_progress: bool = True,
    **option_values: Any,
) -> list[dict[str, Any]]:
    """Run the whole comparison (stage 1, stage 2, every method and seed) and return results.json's rows.

    Options are a :class:`RunOptions` or its fields as keywords, e.g.
    ``run_experiment(my_experiment, "runs/mine", seeds=3, methods=["intra", "inter", "i2m2"])``.
    The run folder ``out`` gets results.json/.csv/.md, a chart, checkpoints, curves and predictions.
    """
    if options is None:
        options = RunOptions(**option_values)
    elif option_values:
        options = replace(options, **option_values)
    results = Comparison(experiment, RunFolder(out, options.resume), options, epoch_progress).run()
    return list(results.get("rows", []))


__all__ = ["Comparison", "RunOptions", "run_experiment"]
