"""The I2M2 model: a product of intra-modality (unimodal) experts and inter-modality (fusion) experts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import torch
from torch import Tensor, nn

from i2m2.models.expert import Batch, Expert, as_expert
from i2m2.models.product_of_experts import product_of_experts
from i2m2.models.validation import InputSpec, batch_size_of, check_labels, check_logits, check_modality

INTER = "inter"


class I2M2(nn.Module):
    """log p(y | x) = log_softmax(sum_k log_softmax(expert_k(x))) over the experts present.

    With only unimodal experts this is the intra-modality model; with only ``inter`` it is the
    inter-modality model; with both it is I2M2.

    Args:
        experts: intra-modality experts keyed by the modality they read. A plain module ``x -> logits``
            is wrapped as a :class:`UnimodalExpert`; an :class:`Expert` is used as is.
        inter: one inter-modality expert (named ``"inter"``) or several keyed by name (a dict or ModuleDict).
        num_classes: the number of classes C (needed to train; without it, experts must agree on C).
        log_prior: ``log p(y)`` from the training labels. When given, the exact Eq. (3) is used, which
            removes the prior that the K discriminative experts count K times (see
            :func:`product_of_experts`). Off by default, as in the authors' code.
        input_specs: optional per-modality shape/dtype that inputs are checked against.
        num_tasks: for several classification tasks at once (e.g. the four fastMRI findings), every
            expert returns ``(batch, num_tasks, classes)`` and each task is its own product of experts;
            ``log_prior`` is then ``(num_tasks, classes)``. ``None``: one task, logits ``(batch, classes)``.
    """

    def __init__(
        self,
        experts: Mapping[str, nn.Module] | None = None,
        inter: Expert | Mapping[str, Expert] | nn.ModuleDict | None = None,
        num_classes: int | None = None,
        log_prior: Tensor | None = None,
        input_specs: Mapping[str, InputSpec] | None = None,
        num_tasks: int | None = None,
    ) -> None:
        super().__init__()
        named: dict[str, Expert] = {name: as_expert(name, m) for name, m in (experts or {}).items()}
        for name, expert in _inter_experts(inter).items():
            if name in named:
                raise ValueError(f"two experts are named '{name}'")
            named[name] = expert
        if not named:
            raise ValueError("I2M2 needs at least one expert")
        self.experts = nn.ModuleDict(named)
        self.num_classes = num_classes
        self.num_tasks = num_tasks
        self.input_specs = dict(input_specs or {})
        if log_prior is not None:
            _check_log_prior(log_prior, num_classes, num_tasks)
        self.log_prior: Tensor | None
        self.register_buffer("log_prior", None if log_prior is None else log_prior.detach().float())

    def named_experts(self) -> dict[str, Expert]:
        """The experts by name (``self.experts`` holds only :class:`Expert` instances)."""
        return {name: cast(Expert, expert) for name, expert in self.experts.items()}

    @property
    def modalities(self) -> tuple[str, ...]:
        """Every modality some expert reads, in first-use order."""
        seen: dict[str, None] = {}
        for expert in self.named_experts().values():
            seen.update(dict.fromkeys(expert.modalities))
        return tuple(seen)

    def set_prior_from_labels(self, labels: Tensor, num_classes: int) -> None:
        """Turn on the exact prior correction with p(y) estimated from training labels (add-one smoothed).

        ``labels`` is ``(N,)``, or ``(N, num_tasks)`` for a multi-task model (one prior per task).
        """
        check_labels(labels, num_classes)
        if self.num_classes is not None and self.num_classes != num_classes:
            raise ValueError(
                f"log_prior: the model has {self.num_classes} classes, got num_classes={num_classes}"
            )
        self.num_classes = num_classes
        if self.num_tasks is None:
            counts = torch.bincount(labels.long().flatten(), minlength=num_classes).float() + 1.0
        else:
            if labels.dim() != 2 or labels.shape[1] != self.num_tasks:
                raise ValueError(f"labels: expected shape (N, {self.num_tasks}), got {tuple(labels.shape)}")
            columns = [torch.bincount(t.long(), minlength=num_classes) for t in labels.T]
            counts = torch.stack(columns).float() + 1.0
        self.log_prior = (counts / counts.sum(-1, keepdim=True)).log()

    def expert_logits(
        self,
        batch: Batch,
        present: Mapping[str, Tensor] | None = None,
        allow_missing: bool = False,
        check_values: bool = True,
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Run every expert whose modalities are in the batch.

        Rows marked absent are zero-filled, and with a presence mask each expert runs on the rows where all
        its modalities are present only (then scattered back), so what an absent row holds (NaN, garbage,
        zeros) cannot reach the present rows, not even through batch statistics in training mode.

        ``check_values=False`` skips the NaN/inf scan of the inputs (a host-device sync): trainers check the
        data where it enters instead of on every step.

        Returns ``(logits, masks)``: logits ``(B, C)`` (``(B, T, C)`` with tasks) per expert that ran
        and, per expert, a boolean ``(B,)`` mask of the examples where all its modalities are present.
        """
        inputs, present_rows, size = self._inputs(batch, present, allow_missing, check_values)
        experts = self.named_experts()
        logits: dict[str, Tensor] = {}
        masks: dict[str, Tensor] = {}
        classes: int | None = None
        for name, expert in experts.items():
            # An expert that handles missing modalities itself (e.g. NullTokenFusion) runs on any subset.
            handles_missing = getattr(expert, "handles_missing", False)
            reads = [m for m in expert.modalities if m in batch]
            if not reads if handles_missing else len(reads) < len(expert.modalities):
                continue
            rows = torch.stack([present_rows[m] for m in expert.modalities])
            try:
                if handles_missing:
                    out = expert(inputs, present={m: present_rows[m] for m in reads})
                elif present is not None:
                    out = self._on_present_rows(expert, inputs, rows.all(0), size)
                else:
                    out = expert(inputs)
            except RuntimeError as err:
                shapes = {m: (tuple(batch[m].shape), str(batch[m].dtype)) for m in reads}
                raise ValueError(f"expert '{name}' failed on its inputs {shapes}: {err}") from err
            classes = self.num_classes if self.num_classes is not None else classes
            check_logits(name, out, size, classes, self.num_tasks)
            classes = out.shape[-1]  # without num_classes, every expert must agree with the first
            logits[name] = out
            masks[name] = rows.any(0) if handles_missing else rows.all(0)
        if not logits:
            raise ValueError(
                f"no expert can run: the batch has {sorted(batch)}, experts need {self.modalities}"
            )
        return logits, masks

    def _on_present_rows(self, expert: Expert, inputs: Batch, keep: Tensor, size: int) -> Tensor:
        """The expert on its present rows only, scattered back into ``(B, ...)`` (zeros elsewhere: those
        rows are left out of the product by their mask)."""
        index = keep.nonzero(as_tuple=True)[0]
        if len(index) == size:
            return expert(inputs)
        if len(index) == 0:
            if self.num_classes is None:
                return expert(inputs)  # no class count to shape an empty output with: every row is masked
            tail = (self.num_classes,) if self.num_tasks is None else (self.num_tasks, self.num_classes)
            return torch.zeros(size, *tail, device=keep.device)
        out = expert({m: inputs[m][index] for m in expert.modalities})
        if not isinstance(out, Tensor):
            return out  # check_logits names the expert
        full = out.new_zeros(size, *out.shape[1:])
        full[index] = out
        return full

    def _inputs(
        self,
        batch: Batch,
        present: Mapping[str, Tensor] | None,
        allow_missing: bool,
        check_values: bool,
    ) -> tuple[dict[str, Tensor], dict[str, Tensor], int]:
        """The batch checked, absent rows zero-filled; each modality's present rows; the batch size."""
        if not isinstance(batch, Mapping):
            raise ValueError(
                f"the batch must be a dict of modality name -> Tensor, got {type(batch).__name__}"
            )
        if present is not None and not isinstance(present, Mapping):
            raise ValueError(
                "the presence mask must be a dict of modality name -> bool Tensor, "
                f"got {type(present).__name__}"
            )
        unknown = sorted(set(present) - set(self.modalities) - set(batch), key=str) if present else []
        if unknown:  # a typo would otherwise leave the modality it meant marked present
            raise ValueError(
                f"presence mask names {unknown}, neither a modality of this model nor of the batch; "
                f"expected some of {list(self.modalities)}"
            )
        allow_missing = allow_missing or present is not None
        size = batch_size_of(batch)
        present_rows = {m: self._presence(m, batch, present, size) for m in self.modalities}
        inputs = dict(batch)
        for m in self.modalities:
            if m in batch:
                check_modality(
                    m,
                    batch[m],
                    self.input_specs.get(m),
                    present_rows[m] if check_values else None,
                    check_values,
                )
                if present is not None and m in present:
                    rows = present_rows[m].view(-1, *[1] * (batch[m].dim() - 1))
                    inputs[m] = torch.where(rows, batch[m], torch.zeros_like(batch[m]))
            elif not allow_missing:
                readers = [n for n, e in self.named_experts().items() if m in e.modalities]
                raise ValueError(
                    f"modality '{m}' is missing from the batch (needed by expert(s) {readers}); "
                    f"the batch has {sorted(batch)}. Pass a presence mask to leave those experts out."
                )
        return inputs, present_rows, size

    def forward(
        self, batch: Batch, present: Mapping[str, Tensor] | None = None, allow_missing: bool = False
    ) -> Tensor:
        """Normalized ``log p(y | x)`` of shape ``(batch, classes)`` (``(batch, tasks, classes)`` with tasks).

        Args:
            batch: modality name -> tensor with the batch axis first.
            present: optional modality name -> boolean ``(batch,)``; experts reading an absent modality are
                left out of the product for those examples. A modality missing from the batch counts as
                absent everywhere when a mask is given or ``allow_missing`` is set.
            allow_missing: leave out the experts of modalities missing from the batch instead of raising.
        """
        logits, masks = self.expert_logits(batch, present, allow_missing)
        return product_of_experts(list(logits.values()), list(masks.values()), self.log_prior)

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        """``log_prior`` is a setting, not a learned weight.

        A state dict that has one restores it, even into a model built without one; a state dict without
        one (e.g. the stage-1 weights of the experts) keeps the model's own.
        """
        key = prefix + "log_prior"
        if key in state_dict and self.log_prior is None:
            self.log_prior = torch.empty_like(state_dict[key])
        elif key not in state_dict and self.log_prior is not None:
            state_dict[key] = self.log_prior  # load_state_dict hands hooks a copy they may modify
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @staticmethod
    def _presence(modality: str, batch: Batch, present: Mapping[str, Tensor] | None, size: int) -> Tensor:
        device = next((t.device for t in batch.values() if isinstance(t, Tensor)), torch.device("cpu"))
        if modality not in batch:
            return torch.zeros(size, dtype=torch.bool, device=device)
        if present is None or modality not in present:
            return torch.ones(size, dtype=torch.bool, device=device)
        mask = present[modality]
        if not isinstance(mask, Tensor) or mask.shape != (size,) or mask.dtype != torch.bool:
            got = (tuple(mask.shape), mask.dtype) if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(
                f"presence mask of '{modality}': expected a bool tensor of shape ({size},), got {got}"
            )
        return mask.to(device)


def _inter_experts(inter: Expert | Mapping[str, Expert] | nn.ModuleDict | None) -> dict[str, Expert]:
    """The inter experts by name: one expert becomes ``{"inter": expert}``."""
    if inter is None:
        return {}
    if isinstance(inter, Expert):
        return {INTER: inter}
    if not isinstance(inter, Mapping | nn.ModuleDict):
        raise TypeError(f"inter must be an i2m2 Expert or a dict of them, got {type(inter).__name__}")
    experts = dict(inter.items())
    for name, expert in experts.items():
        if not isinstance(expert, Expert):
            raise TypeError(f"inter expert '{name}' must be an i2m2 Expert (it must declare its modalities)")
    return cast(dict[str, Expert], experts)


def _check_log_prior(log_prior: object, num_classes: int | None, num_tasks: int | None = None) -> None:
    """``log p(y)`` must be a finite float vector over the classes (``(tasks, classes)`` with tasks)."""
    dims, want = (1, "(classes,)") if num_tasks is None else (2, f"({num_tasks}, classes)")
    if not isinstance(log_prior, Tensor) or log_prior.dim() != dims or not log_prior.is_floating_point():
        got = (tuple(log_prior.shape), log_prior.dtype) if isinstance(log_prior, Tensor) else type(log_prior)
        raise ValueError(f"log_prior: expected a float tensor of shape {want}, got {got}")
    if num_tasks is not None and len(log_prior) != num_tasks:
        raise ValueError(f"log_prior: expected {num_tasks} tasks, got {len(log_prior)}")
    if num_classes is not None and log_prior.shape[-1] != num_classes:
        raise ValueError(f"log_prior: expected {num_classes} classes, got {log_prior.shape[-1]}")
    if not torch.isfinite(log_prior).all():
        raise ValueError("log_prior: contains NaN or infinite values (a class with zero probability?)")
