"""One training job: fit a method with early stopping on validation, then test its best checkpoint once.

One Trainer does the whole job: ``fit``, then ``test(ckpt_path="best")``, which also yields the
per-example predictions (each expert runs once per test batch; every product is derived from those logits).
"""

from __future__ import annotations

import logging
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only

from i2m2.experiment import Splits, StageConfig
from i2m2.models.i2m2 import I2M2
from i2m2.objectives import Objective
from i2m2.runs.predictions import Predictions
from i2m2.training.batchnorm import batchnorm_callbacks
from i2m2.training.datamodule import SplitsDataModule
from i2m2.training.finite import FiniteLoss
from i2m2.training.lightning_module import MethodModule
from i2m2.training.progress import EpochLogLines
from i2m2.training.scale import ScaleConfig
from i2m2.training.timing import PhaseTimer


@dataclass
class FitResult:
    """What a job leaves behind: test metrics on the best checkpoint, its weights and test predictions."""

    metrics: dict[str, float]
    state_dict: dict[str, torch.Tensor]
    predictions: Predictions | None
    epochs: int
    checkpoint: Path | None
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


def fit_and_test(
    model: I2M2,
    splits: Splits,
    config: StageConfig,
    seed: int,
    monitor: str = "acc",
    scale: ScaleConfig | None = None,
    progress_bar: bool = False,
    epoch_lines: str | None = None,
    predict: bool = True,
    checkpoint: Path | None = None,
    log_dir: Path | None = None,
    job: dict[str, Any] | None = None,
    num_workers: int = 0,
    objective: Objective | None = None,
) -> FitResult:
    """Train ``model`` with ``config``, select the best validation epoch, and evaluate it on test.

    Every evaluation runs in ``eval()`` mode (Lightning switches BatchNorm and dropout for validation and
    test). The model's weights are the best checkpoint's when this returns.

    Args:
        checkpoint: where ``ModelCheckpoint`` keeps the best epoch (``.../NAME.ckpt``); ``None`` keeps it
            in memory only (``ModelCheckpoint`` in a folder Lightning picks, removed afterwards).
        log_dir: where ``CSVLogger`` writes the learning curve (``metrics.csv``); ``None`` for none.
        epoch_lines: when not None, print one plain line per epoch starting with it (logs, CI).
        job: plain facts kept in the checkpoint's hyperparameters.
        objective: loss and metrics (default: single-label classification); one whose test metrics are
            calibrated on validation also gets the best epoch's validation predictions.
    """
    pl.seed_everything(seed, workers=True, verbose=False)
    scale = scale or ScaleConfig()
    module = MethodModule(
        model,
        splits.num_classes,
        config.optimizer,
        config.lr,
        config.weight_decay,
        config.momentum,
        job=job,
        objective=objective,
    )
    module.step_logging = progress_bar
    data = SplitsDataModule(
        splits, batch_size=config.batch_size, num_workers=num_workers, pin_memory=scale.uses_gpu()
    )
    mode = "min" if monitor == "loss" else "max"
    keep_file = checkpoint is not None
    if checkpoint is None:
        import tempfile

        scratch = tempfile.TemporaryDirectory(prefix="i2m2-fit-")
        checkpoint = Path(scratch.name) / "best.ckpt"
    if getattr(rank_zero_only, "rank", 0) == 0:
        checkpoint.unlink(missing_ok=True)  # a partial one from an interrupted run of this job
        if log_dir is not None and log_dir.is_dir():
            # the curve of an interrupted run of this job: this run rewrites it (Lightning would warn)
            shutil.rmtree(log_dir)
    best = ModelCheckpoint(
        dirpath=checkpoint.parent,
        filename=checkpoint.stem,
        monitor=f"val/{monitor}",
        mode=mode,
        save_top_k=1,
        save_weights_only=True,
        enable_version_counter=False,
        auto_insert_metric_name=False,
    )
    timer = PhaseTimer()
    callbacks: list[pl.Callback] = [best, timer]
    callbacks += batchnorm_callbacks(config.bn_stats)  # BatchNorm at validation and test
    callbacks.append(FiniteLoss(job))  # NaN/inf epoch loss: stop, naming the expert
    if config.patience is not None:
        callbacks.append(EarlyStopping(monitor=f"val/{monitor}", mode=mode, patience=config.patience))
    if epoch_lines is not None and not progress_bar:
        callbacks.append(EpochLogLines(epoch_lines))
    logger = CSVLogger(log_dir.parent, name=log_dir.name, version="") if log_dir is not None else False
    trainer = pl.Trainer(
        max_epochs=config.max_epochs,
        gradient_clip_val=config.gradient_clip_val,
        callbacks=callbacks,
        logger=logger,
        log_every_n_steps=1 if progress_bar else 50,
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **scale.trainer_kwargs(),
    )
    # batch_size is the examples per optimizer step: under DDP each process takes its share, so a
    # recipe trains the same way on one device or many.
    data.batch_size = max(1, config.batch_size // trainer.world_size)
    trainer.fit(module, datamodule=data)
    single_process = trainer.world_size == 1
    module.collect_predictions = predict and single_process
    module.test_outputs = []
    tested = trainer.test(module, datamodule=data, ckpt_path="best", verbose=False)
    metrics = {k.removeprefix("test/"): float(v) for k, v in tested[0].items()}
    predictions: Predictions | None = None
    if predict:
        outputs = module.test_outputs if single_process else predict_on_one_device(module, data, scale)
        predictions = gather_predictions(outputs, splits.test)
    if objective is not None and objective.validation_calibrated():
        if predictions is None:
            predictions = gather_predictions(predict_on_one_device(module, data, scale), splits.test)
        val = gather_predictions(predict_on_one_device(module, data, scale, split="val"), splits.val)
        metrics |= objective.calibrated_metrics(val, predictions)
        predictions = predictions if predict else None
    module.test_outputs = []
    state = {k: v.detach().cpu().clone() for k, v in module.model.state_dict().items()}
    if not keep_file:
        scratch.cleanup()
    return FitResult(
        metrics, state, predictions, trainer.current_epoch, checkpoint if keep_file else None, timer.phases()
    )


def predict_on_one_device(
    module: MethodModule, data: SplitsDataModule, scale: ScaleConfig, split: str = "test"
) -> list[Any]:
    """Predictions of one split on one device, every example once and in order (under multi-process DDP
    each rank tests a shard; a calibrated objective also needs validation predictions)."""
    trainer = pl.Trainer(
        accelerator=scale.accelerator,
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
    )
