"""One training job: fit a method with early stopping on validation, test its best checkpoint, predict."""

from __future__ import annotations

import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from i2m2.data.multimodal_dataset import DataSplits
from i2m2.experiments.spec import StageConfig
from i2m2.models.i2m2 import I2M2
from i2m2.training.datamodule import SplitsDataModule
from i2m2.training.lightning_module import MethodModule
from i2m2.runs.predictions import Predictions
from i2m2.training.progress import EpochLogLines
from i2m2.training.scale import ScaleConfig


@dataclass
class FitResult:
    """What a job leaves behind: test metrics on the best checkpoint, its weights and test predictions."""

    metrics: dict[str, float]
    state_dict: dict[str, torch.Tensor]
    predictions: Predictions | None
    epochs: int


def quiet_lightning() -> None:
    """Keep Lightning's per-run banners out of the output of runs that train dozens of small models."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning_utilities"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")


def fit_and_test(
    model: I2M2,
    splits: DataSplits,
    config: StageConfig,
    seed: int,
    monitor: str = "acc",
    scale: ScaleConfig | None = None,
    progress_bar: bool = False,
    epoch_lines: str | None = None,
    predict: bool = True,
    workdir: Path | None = None,
) -> FitResult:
    """Train ``model`` with ``config``, select the best validation epoch, and evaluate it on test.

    Every evaluation runs in ``eval()`` mode (Lightning switches BatchNorm and dropout for validation,
    test and predict). The model's weights are the best checkpoint's when this returns.
    ``epoch_lines``, when not None, prints one plain line per epoch starting with it (logs, CI).
    """
    pl.seed_everything(seed, workers=True, verbose=False)
    scale = scale or ScaleConfig()
    module = MethodModule(
        model, splits.num_classes, config.optimizer, config.lr, config.weight_decay, config.momentum
    )
    data = SplitsDataModule(splits, batch_size=config.batch_size)
    mode = "min" if monitor == "loss" else "max"
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".fit-") as tmp:
        checkpoint = ModelCheckpoint(
            dirpath=tmp,
            monitor=f"val/{monitor}",
            mode=mode,
            save_top_k=1,
            filename="best",
            save_weights_only=True,
        )
        callbacks: list[pl.Callback] = [checkpoint]
        if config.patience is not None:
            callbacks.append(EarlyStopping(monitor=f"val/{monitor}", mode=mode, patience=config.patience))
        if epoch_lines is not None and not progress_bar:
            callbacks.append(EpochLogLines(epoch_lines))
        trainer = pl.Trainer(
            max_epochs=config.max_epochs,
            gradient_clip_val=config.gradient_clip_val,
            callbacks=callbacks,
            logger=False,
            enable_progress_bar=progress_bar,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            **scale.trainer_kwargs(),
        )
        trainer.fit(module, datamodule=data)
        best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
        module.load_state_dict(best["state_dict"])
        tested = trainer.test(module, datamodule=data, verbose=False)
    metrics = {k.removeprefix("test/"): float(v) for k, v in tested[0].items()}
    predictions = predict_test(module, data, scale) if predict else None
    state = {k: v.detach().cpu().clone() for k, v in module.model.state_dict().items()}
    return FitResult(metrics, state, predictions, trainer.current_epoch)


def predict_test(module: MethodModule, data: SplitsDataModule, scale: ScaleConfig) -> Predictions:
    """Per-example test predictions, gathered on one device so that every example appears once."""
    trainer = pl.Trainer(
        accelerator=scale.accelerator,
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    batches: list[dict[str, Any]] = trainer.predict(module, datamodule=data)  # type: ignore[assignment]

    def cat(get: Any) -> np.ndarray:
        return torch.cat([get(b).float().cpu() for b in batches]).numpy()

    first = batches[0]
    groups = getattr(data.splits.test, "groups", None) if data.splits is not None else None
    return Predictions(
        labels=cat(lambda b: b["labels"]).astype(np.int64),
        log_probs=cat(lambda b: b["log_probs"]),
        experts={n: cat(lambda b, n=n: b["experts"][n]) for n in first["experts"]},
        withheld={m: cat(lambda b, m=m: b["withheld"][m]) for m in first["withheld"]},
        groups=None if groups is None else groups.numpy(),
    )
