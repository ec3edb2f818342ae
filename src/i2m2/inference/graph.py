"""The prediction graph every route shares: preprocessing, every expert, the masked product of experts.

Python prediction, the ONNX/TorchScript export and the server all run this one module, so they give the
same probabilities. It differs from :meth:`i2m2.models.i2m2.I2M2.forward` in one way that exporting needs:
each expert runs on every row (absent rows zero-filled) instead of gathering the present rows first,
and the presence masks then leave it out of the product where its modalities are absent. In ``eval()``
mode experts treat rows independently, so both give the same result; shapes stay static for export.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from i2m2.inference.preprocessing import InputTransform, Preprocessing
from i2m2.models.expert import Expert
from i2m2.models.fusion.null_token import NullTokenFusion
from i2m2.models.i2m2 import I2M2
from i2m2.models.product_of_experts import product_of_experts


class PredictionGraph(nn.Module):
    """Raw inputs and presence masks per modality -> ``log p(y | x)`` and each expert's log-probabilities.

    Args:
        model: the trained I2M2 model (any method: unimodal, intra, inter, i2m2).
        preprocessing: the job's saved preprocessing.
    """

    def __init__(self, model: I2M2, preprocessing: Preprocessing) -> None:
        super().__init__()
        self.model = model.eval()
        self.modalities = tuple(m for m in preprocessing.modalities if m in model.modalities)
        self.transforms = nn.ModuleDict({m: InputTransform(preprocessing.inputs[m]) for m in self.modalities})
        self.expert_names = tuple(model.named_experts())

    def forward(
        self, inputs: dict[str, Tensor], present: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        """``(log p(y|x), expert log-probabilities, expert masks)``; every modality of the model must be
        in ``inputs`` and ``present`` (an absent one: any values, mask all False)."""
        batch = {m: self.transforms[m](inputs[m], present[m]) for m in self.modalities}
        logits: list[Tensor] = []
        masks: list[Tensor] = []
        for expert in self.model.named_experts().values():
            reads = {m: present[m] for m in expert.modalities}
            if getattr(expert, "handles_missing", False):
                logits.append(missing_aware(expert, batch, reads))
                masks.append(torch.stack(list(reads.values())).any(0))
            else:
                logits.append(expert({m: batch[m] for m in expert.modalities}))
                masks.append(torch.stack(list(reads.values())).all(0))
        log_probs = product_of_experts(logits, masks, self.model.log_prior)
        experts = {n: F.log_softmax(z, dim=-1) for n, z in zip(self.expert_names, logits, strict=True)}
        return log_probs, experts, dict(zip(self.expert_names, masks, strict=True))


def missing_aware(expert: Expert, batch: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
    """An expert that takes missing modalities itself. A null-token fusion is run branch-free: every encoder
    on every row, then its null token where a modality is absent (its own forward encodes only the present
    rows, a data-dependent branch a traced graph would freeze); the same values in ``eval()`` mode."""
    if isinstance(expert, NullTokenFusion):
        features = [expert.encoders[m](batch[m]).flatten(1) for m in expert.modalities]
        return expert.conditional(features, torch.stack([present[m] for m in expert.modalities], dim=1))
    return expert({m: batch[m] for m in expert.modalities}, present=present)


class ExportGraph(nn.Module):
    """:class:`PredictionGraph` with positional inputs (``x_<m>`` then ``present_<m>`` per modality) and
    class probabilities out: the form ONNX and TorchScript graphs take."""

    def __init__(self, graph: PredictionGraph) -> None:
        super().__init__()
        self.graph = graph
        self.modalities = graph.modalities

    def forward(self, *tensors: Tensor) -> Tensor:
        n = len(self.modalities)
        inputs = dict(zip(self.modalities, tensors[:n], strict=True))
        present = dict(zip(self.modalities, tensors[n:], strict=True))
        log_probs, _, _ = self.graph(inputs, present)
        return log_probs.exp()
