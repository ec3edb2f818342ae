"""Stop a job whose training loss became NaN or infinite, naming the expert and the epoch.

Cheap: at the end of each training epoch the epoch's mean loss (already computed for the logs) is
checked; nothing runs per step. Only when it is not finite are training batches run again, without
gradients, to find which expert's logits are not finite.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

from i2m2.errors import UserError

MAX_BATCHES = 50  # batches run again to find the expert; one usually shows it


class NonFiniteError(UserError):
    """The training loss or an expert's output became NaN or infinite."""


class FiniteLoss(pl.Callback):
    """Raise :class:`NonFiniteError` at the end of an epoch whose mean training loss is NaN or infinite.

    Args:
        job: the job's facts (``method``, ``group``, ``seed``) that name it in the message.
        key: the logged loss.
    """

    def __init__(self, job: dict[str, Any] | None = None, key: str = "train/loss") -> None:
        facts = job or {}
        self.job = " ".join(
            f"{k}={facts[k]}" for k in ("group", "seed", "method") if facts.get(k) not in (None, "")
        )
        self.key = key

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loss = trainer.callback_metrics.get(self.key)
        if loss is None or bool(torch.isfinite(loss).all()):
            return
        epoch = trainer.current_epoch + 1
        where = f"{self.job}: " if self.job else ""
        culprits = self.find_experts(trainer, pl_module)
        advice = "try a lower lr or a gradient_clip_val"
        raise NonFiniteError(
            f"{where}the training loss is {float(loss)} in epoch {epoch}; {culprits}; {advice}"
        )

    @staticmethod
    def find_experts(trainer: pl.Trainer, module: Any) -> str:
        """Which experts give non-finite logits on a training batch, and whether their weights are."""
        model = getattr(module, "model", None)
        loader = trainer.train_dataloader
        if model is None or not hasattr(module, "_outputs") or loader is None:
            return "the experts could not be checked"
        experts = model.named_experts()
        bad_weights = [
            n for n, e in experts.items() if not all(bool(torch.isfinite(p).all()) for p in e.parameters())
        ]
        bad_logits: list[str] = []
        with torch.no_grad():
            for i, batch in enumerate(loader):
                if i >= MAX_BATCHES:
                    break
                batch = module.transfer_batch_to_device(batch, module.device, 0)
                try:
                    logits, _, _ = module._outputs(batch, 1)  # 1: skip the first-batch value checks
                except ValueError as err:  # a check inside the model names the problem itself
                    return str(err)
                bad_logits = [n for n, z in logits.items() if not bool(torch.isfinite(z).all())]
                if bad_logits:
                    break
        own = [n for n in bad_logits if n not in bad_weights]  # finite weights, non-finite output
        if own:
            return f"expert {_names(own)} gives NaN/inf logits from finite weights"
        if bad_weights:
            return f"the weights of expert {_names(bad_weights)} became NaN/inf (training diverged)"
        if bad_logits:
            return f"expert {_names(bad_logits)} gives NaN/inf logits"
        return "every expert's logits are finite on the batches checked (check the targets and the loss)"


def _names(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)
