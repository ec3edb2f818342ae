"""One training job: fit a method with early stopping on validation, then test its best epoch once.

One Trainer does the whole job: ``fit``, then ``test``, which also yields the per-example predictions (each
expert runs once per test batch; every product is derived from those logits).

A job's fixed costs are kept low inside Lightning (``docs/performance.md`` has the measurements):

* The best epoch is kept in memory (:class:`BestCheckpoint`, Lightning's ``ModelCheckpoint`` with its own
  selection rules) and tested from there; its checkpoint file is written once, at the job's end, and only
  when the job has a scratch folder of its own. (Under multi-process DDP or with a logger of the user's, the
  checkpoint is written on every improvement as before.)
* The learning curve (:class:`Curve`, Lightning's ``CSVLogger``) is written once at the job's end, not
  rewritten after every epoch.
* Small in-memory validation and test sets are evaluated in few large batches
  (:func:`evaluation_batch_size`); losses and metrics are still accumulated batch by batch at the
  training batch size, so every number is the same as with evaluation at the training batch size.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import warnings
from argparse import Namespace
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from weakref import proxy

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.utilities.logger import _convert_params
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.core.saving import save_hparams_to_yaml
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only

from i2m2.data.multimodal_dataset import MultimodalDataset
from i2m2.experiment import Splits, StageConfig
from i2m2.models.i2m2 import I2M2
from i2m2.objectives import Objective
from i2m2.runs.predictions import Predictions
from i2m2.training.batchnorm import batchnorm_callbacks
from i2m2.training.datamodule import SplitsDataModule
from i2m2.training.finite import FiniteLoss
from i2m2.training.lightning_module import MethodModule
from i2m2.training.progress import EpochLogLines
from i2m2.training.timing import PhaseTimer
from i2m2.training.trainer_options import DEFAULTS, job_trainer_kwargs, uses_gpu


@dataclass
class FitSettings:
    """How one job trains and what it keeps (every input of :func:`fit_and_test` but the model and data).

    Args:
        stage: optimizer, epochs, batch size, clipping, early stopping and BatchNorm mode.
        seed: seeds the initial state of everything random in the job (batch order, dropout).
        monitor: the validation metric that selects the best epoch (``acc``, ``auroc``, ``loss``, ...).
        objective: loss and metrics (default: single-label classification); one whose test metrics are
            calibrated on validation also gets the best epoch's validation predictions.
        trainer: any ``lightning.pytorch.Trainer`` arguments (see :mod:`i2m2.training.trainer_options`).
        predict: keep per-example test predictions.
        scratch: the only folder the job writes (its best checkpoint and its CSV curve); ``None``: a temp
            folder, removed afterwards.
        job: plain facts about the job (experiment, method, group, seed), kept in its hyperparameters.
        num_workers: DataLoader worker processes.
        progress: ``bar`` (Lightning's, for a terminal), ``lines`` (one plain line per epoch) or ``none``.
        label: what each epoch line starts with (the job, in a long comparison).
        name: the job's name, the version of each logger the user asked for (``--trainer.logger``).
        test: ``False`` selects the best validation epoch and stops there: the metrics are that epoch's
            ``val/<monitor>`` and the test split is never read (``i2m2 tune`` selects on validation only).
        callbacks: more Trainer callbacks for this job (e.g. a tuner's pruning callback).
    """

    stage: StageConfig
    seed: int = 0
    monitor: str = "acc"
    objective: Objective | None = None
    trainer: dict[str, Any] = field(default_factory=dict)
    predict: bool = True
    scratch: Path | None = None
    job: dict[str, Any] = field(default_factory=dict)
    num_workers: int = 0
    progress: Literal["bar", "lines", "none"] = "none"
    label: str = ""
    name: str = "job"
    test: bool = True
    callbacks: list[pl.Callback] = field(default_factory=list)


@dataclass
class FitResult:
    """What a job leaves behind: test metrics of the best epoch, its weights, predictions and curve."""

    metrics: dict[str, float]
    state_dict: dict[str, torch.Tensor]
    predictions: Predictions | None
    epochs: int
    hyper_parameters: dict[str, Any] = field(default_factory=dict)
    curve: str = ""  # the learning curve, CSV text as Lightning's CSVLogger writes it
    phases: dict[str, float] = field(default_factory=dict)  # seconds in train, val and test


def quiet_lightning() -> None:
    """Keep Lightning's per-run banners out of the output of runs that train dozens of small models."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning_utilities"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
    warnings.filterwarnings(
        "ignore", message=".*The number of training batches .* is smaller than the logging.*"
    )


def recipe_callbacks(
    stage: StageConfig, monitor: str, job: dict[str, Any] | None = None
) -> list[pl.Callback]:
    """What a stage's settings ask of the Trainer beyond its arguments: BatchNorm at evaluation, a stop
    on a non-finite loss, and early stopping when the stage has a patience (``i2m2 run`` and ``i2m2 fit``
    both use this)."""
    callbacks: list[pl.Callback] = [*batchnorm_callbacks(stage.bn_stats), FiniteLoss(job)]
    if stage.patience is not None:
        mode = "min" if monitor == "loss" else "max"
        callbacks.append(Stopping(monitor=f"val/{monitor}", mode=mode, patience=stage.patience))
    return callbacks


class Stopping(EarlyStopping):
    """Lightning's ``EarlyStopping`` with its ``state_key`` formatted once (Lightning formats it for every
    hook call, several a step; it depends only on the constructor's arguments)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._state_key = super().state_key

    @property
    def state_key(self) -> str:
        return self._state_key


def fit_and_test(model: I2M2, splits: Splits, settings: FitSettings) -> FitResult:
    """Train ``model`` with ``settings.stage``, select the best validation epoch, and evaluate it on test.

    Every evaluation runs in ``eval()`` mode (Lightning switches BatchNorm and dropout for validation and
    test). The model's weights are the best epoch's when this returns. Nothing is written outside
    ``settings.scratch`` (or a temp folder), except by loggers the user asked for.
    """
    pl.seed_everything(settings.seed, workers=True, verbose=False)
    stage = settings.stage
    module = MethodModule(
        model, stage.optimizer, stage.lr, stage.weight_decay, stage.momentum, settings.job, settings.objective
    )
    module.step_logging = settings.progress == "bar"
    data = SplitsDataModule(
        splits,
        batch_size=stage.batch_size,
        num_workers=settings.num_workers,
        pin_memory=uses_gpu(settings.trainer),
    )
    with tempfile.TemporaryDirectory(prefix="i2m2-job-") as temp:
        scratch = Path(settings.scratch or temp)
        trainer = _trainer(settings, scratch)
        # batch_size is the examples per optimizer step: under DDP each process takes its share, so a
        # recipe trains the same way on one device or many.
        data.batch_size = max(1, stage.batch_size // trainer.world_size)
        evaluated = [splits.val, splits.test] if settings.test else [splits.val]
        data.eval_batch_size = evaluation_batch_size(
            evaluated, data.batch_size, model, stage.bn_stats, trainer.world_size
        )
        module.eval_chunk = data.batch_size  # losses and metrics accumulate per training-size batch
        trainer.fit(module, datamodule=data)
        if settings.test:
            result = _test(trainer, module, data, splits, settings)
        else:
            result = _validated(trainer, module)
        best = _callback(trainer, BestCheckpoint)
        if settings.scratch is not None:
            best.write(trainer)  # the best epoch's checkpoint, once (a temp folder would only delete it)
        result.curve = _callback(trainer, Curve).write(scratch / CURVE, hparams=settings.scratch is not None)
    return result


CURVE = Path("curve") / "metrics.csv"
BEST = "best"  # the folder of the best epoch's checkpoint
# Evaluation batches of in-memory data: at most this many input values each (16 MB of float32), for models of
# at most SMALL_MODEL parameters (whose activations per example are modest); larger models, data read from
# disk and multi-process runs evaluate at the training batch size.
EVAL_VALUES = 1 << 22
SMALL_MODEL = 1 << 20


def evaluation_batch_size(
    evaluated: list[Any], batch_size: int, model: torch.nn.Module, bn_stats: str, world_size: int = 1
) -> int:
    """Examples per validation and test batch (``evaluated``: those splits): a multiple of ``batch_size``,
    as large as memory allows.

    Each evaluation batch covers whole training-size batches, and :class:`MethodModule` accumulates losses
    and metrics over those in order (``eval_chunk``), so the numbers equal those of evaluating at
    ``batch_size`` (on CPU, where a row's output does not depend on the rows beside it, bit for bit); what
    is saved is the per-batch work of the evaluation loop. ``bn_stats="batch"`` normalizes each batch by its
    own statistics, so its batches stay at ``batch_size``; so do larger models (over ``SMALL_MODEL``
    parameters), data not held in memory as a :class:`MultimodalDataset`, and multi-process runs.
    """
    if world_size > 1 or bn_stats == "batch" or sum(p.numel() for p in model.parameters()) > SMALL_MODEL:
        return batch_size
    if not evaluated or not all(isinstance(s, MultimodalDataset) and len(s) for s in evaluated):
        return batch_size
    per_example = max(sum(x.numel() // max(1, len(x)) for x in s.inputs.values()) for s in evaluated)
    largest = max(len(s) for s in evaluated)
    batches = min(EVAL_VALUES // max(1, per_example * batch_size), math.ceil(largest / batch_size))
    return max(1, batches) * batch_size


class BestCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` (the same choice of the best epoch) that keeps the best epoch's
    checkpoint in memory and writes it once, when asked (:meth:`write`), instead of on every improvement.

    Weights are copied to host memory (CPU tensors in the file). With several processes (each would hold a
    copy, and spawned ones lose it) or a logger of the user's (it may upload each saved file), it writes
    files as ``ModelCheckpoint`` does.
    """

    def __init__(self, *args: Any, in_memory: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_memory = in_memory
        self.best: dict[str, Any] | None = None  # the best epoch's checkpoint, when kept in memory
        self._state_key = super().state_key

    @property
    def state_key(self) -> str:
        # Lightning formats it for every hook call (several a step); it depends only on the arguments above.
        return self._state_key

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "fit":
            self.in_memory = self.in_memory and trainer.world_size == 1
            self.best = None

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        if not self.in_memory:
            super()._save_checkpoint(trainer, filepath)
            return
        checkpoint = trainer._checkpoint_connector.dump_checkpoint(self.save_weights_only)
        checkpoint["state_dict"] = {
            k: v.detach().clone() if v.device.type == "cpu" else v.detach().to("cpu")
            for k, v in checkpoint["state_dict"].items()
        }
        self.best = checkpoint
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))

    def _remove_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        if not self.in_memory:
            super()._remove_checkpoint(trainer, filepath)

    def restore_best(self, module: pl.LightningModule) -> bool:
        """Load the best epoch's weights into ``module`` (as ``test(ckpt_path="best")`` would); whether
        they were in memory."""
        if self.best is None:
            return False
        module.on_load_checkpoint(self.best)
        module.load_state_dict(self.best["state_dict"])
        return True

    def load_best_file(self, module: pl.LightningModule) -> None:
        """Load the best epoch's checkpoint file (``best_model_path``, when one was written) into ``module``.
        Needed even after ``test(ckpt_path="best")``: under ``ddp_spawn`` that loads it in the spawned
        processes only, and hands back this process's module with the last epoch's weights."""
        if self.best_model_path:
            checkpoint = torch.load(self.best_model_path, map_location="cpu", weights_only=True)
            module.load_state_dict(checkpoint["state_dict"])

    def write(self, trainer: pl.Trainer) -> None:
        """Write the best epoch's checkpoint kept in memory to its file (``best_model_path``)."""
        if self.best is not None and self.best_model_path:
            trainer.strategy.save_checkpoint(self.best, self.best_model_path)


class Curve(CSVLogger):
    """Lightning's ``CSVLogger`` written once, at the job's end (:meth:`write`): it rewrote the metrics
    file after every logging call and hparams.yaml at the start of fit and of test. The files are the same."""

    def save(self) -> None:
        pass

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace | None = None) -> None:
        self.experiment.hparams.update(_convert_params(params))

    def write(self, path: Path, hparams: bool = True) -> str:
        """Write the curve (and, with ``hparams``, hparams.yaml) and return the CSV text ("" when nothing
        was logged)."""
        if getattr(rank_zero_only, "rank", 0) == 0 and self._experiment is not None:
            CSVLogger.save(self)
            if hparams:
                writer = self.experiment
                save_hparams_to_yaml(Path(writer.log_dir) / writer.NAME_HPARAMS_FILE, writer.hparams)
        return _read_curve(path)


def _callback(trainer: pl.Trainer, kind: type[Any]) -> Any:
    found = [c for c in [*trainer.callbacks, *trainer.loggers] if isinstance(c, kind)]  # type: ignore[attr-defined]
    return found[0]


def _trainer(settings: FitSettings, scratch: Path) -> pl.Trainer:
    """The job's Trainer: the user's arguments, the recipe's epochs and clipping, the job's callbacks."""
    kwargs, loggers = job_trainer_kwargs(settings.trainer, settings.name)
    if getattr(rank_zero_only, "rank", 0) == 0 and scratch.is_dir():
        for leftover in (scratch / BEST, scratch / CURVE.parent):  # an interrupted run of this job
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(
                missing_ok=True
            )
    mode = "min" if settings.monitor == "loss" else "max"
    best = BestCheckpoint(
        dirpath=scratch / BEST,
        filename="best",
        monitor=f"val/{settings.monitor}",
        mode=mode,
        save_top_k=1,
        save_weights_only=True,
        enable_version_counter=False,
        auto_insert_metric_name=False,
        in_memory=not loggers,
    )
    callbacks: list[pl.Callback] = [
        best,
        PhaseTimer(),
        *recipe_callbacks(settings.stage, settings.monitor, settings.job),
    ]
    if settings.progress == "lines":
        callbacks.append(EpochLogLines(settings.label))
    callbacks += settings.callbacks
    bar = settings.progress == "bar"
    csv = Curve(scratch, name=CURVE.parent.name, version="")
    defaults: dict[str, Any] = {
        "log_every_n_steps": 1 if bar else 50,
        "enable_progress_bar": bar,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    return pl.Trainer(
        **(defaults | kwargs),
        max_epochs=settings.stage.max_epochs,
        gradient_clip_val=settings.stage.gradient_clip_val,
        callbacks=callbacks,
        logger=[csv, *loggers],
    )


def _validated(trainer: pl.Trainer, module: MethodModule) -> FitResult:
    """The best validation epoch's score and weights, without testing (the test split is not read)."""
    best = _callback(trainer, BestCheckpoint)
    if not best.restore_best(module):
        best.load_best_file(module)
    score = float("nan") if best.best_model_score is None else float(best.best_model_score)
    state = {k: v.detach().cpu().clone() for k, v in module.model.state_dict().items()}
    return FitResult(
        {str(best.monitor): score},
        state,
        None,
        trainer.current_epoch,
        hyper_parameters=dict(module.hparams),
        phases=_callback(trainer, PhaseTimer).phases(),
    )


def _test(
    trainer: pl.Trainer, module: MethodModule, data: SplitsDataModule, splits: Splits, settings: FitSettings
) -> FitResult:
    """Test the best epoch once; its metrics, weights and (on request) per-example predictions."""
    single_process = trainer.world_size == 1
    module.collect_predictions = settings.predict and single_process
    module.test_outputs = []
    best = _callback(trainer, BestCheckpoint)
    in_memory = best.restore_best(module)
    tested = trainer.test(module, datamodule=data, ckpt_path=None if in_memory else "best", verbose=False)
    metrics = {k.removeprefix("test/"): float(v) for k, v in tested[0].items()}
    if not in_memory:
        best.load_best_file(module)  # the tested weights, in this process too
    predictions: Predictions | None = None
    if settings.predict:
        outputs = module.test_outputs if single_process else predict_on_one_device(module, data, settings)
        predictions = gather_predictions(outputs, splits.test)
    objective = settings.objective
    if objective is not None and objective.validation_calibrated():
        test = predictions or gather_predictions(predict_on_one_device(module, data, settings), splits.test)
        val = gather_predictions(predict_on_one_device(module, data, settings, split="val"), splits.val)
        metrics |= objective.calibrated_metrics(val, test)
    module.test_outputs = []
    state = {k: v.detach().cpu().clone() for k, v in module.model.state_dict().items()}
    timer = _callback(trainer, PhaseTimer)
    return FitResult(
        metrics,
        state,
        predictions,
        trainer.current_epoch,
        hyper_parameters=dict(module.hparams),
        phases=timer.phases(),
    )


def _read_curve(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:  # no epoch logged anything, or another rank's job
        return ""


def predict_on_one_device(
    module: MethodModule, data: SplitsDataModule, settings: FitSettings, split: str = "test"
) -> list[Any]:
    """Predictions of one split on one device, every example once and in order (under multi-process DDP
    each rank tests a shard; a calibrated objective also needs validation predictions)."""
    trainer = pl.Trainer(
        accelerator=(DEFAULTS | settings.trainer).get("accelerator", "auto"),
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    loader = data.val_dataloader() if split == "val" else data.test_dataloader()
    return trainer.predict(module, dataloaders=loader)  # type: ignore[return-value]


def gather_predictions(batches: list[dict[str, Any]], split: Any) -> Predictions:
    def cat(get: Any) -> np.ndarray:
        return torch.cat([get(b).float() for b in batches]).numpy()

    first = batches[0]
    groups = getattr(split, "groups", None)
    return Predictions(
        labels=cat(lambda b: b["labels"]).astype(np.int64),
        log_probs=cat(lambda b: b["log_probs"]),
        experts={n: cat(lambda b, n=n: b["experts"][n]) for n in first["experts"]},
        withheld={m: cat(lambda b, m=m: b["withheld"][m]) for m in first["withheld"]},
        groups=None if groups is None else np.asarray(groups),
        scores=cat(lambda b: b["scores"]) if "scores" in first else None,
    )
