"""Progress for logs: one plain line per epoch when output is not a terminal (CI, files, pipes)."""

from __future__ import annotations

import sys

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_only


class EpochLogLines(pl.Callback):
    """Print ``epoch 3/20: train/loss=0.41 val/acc=0.87 ...`` after each epoch, instead of a bar.

    Args:
        prefix: put before every line, e.g. the job (``"seed=0 unimodal:image "``) in a long comparison.
    """

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    @rank_zero_only
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = " ".join(
            f"{k}={float(v):.4f}"
            for k, v in sorted(trainer.callback_metrics.items())
            if not k.endswith(("_step", "_epoch"))  # at epoch end, train/loss is already the epoch mean
        )
        print(
            f"{self.prefix}epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: {metrics}",
            file=sys.stderr,
            flush=True,
        )


def progress_trainer_kwargs(interactive: bool) -> dict[str, object]:
    """A progress bar on a terminal, plain epoch lines elsewhere."""
    return (
        {"enable_progress_bar": True}
        if interactive
        else {"enable_progress_bar": False, "callbacks": [EpochLogLines()]}
    )
