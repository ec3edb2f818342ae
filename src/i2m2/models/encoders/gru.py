"""A GRU encoder for fixed-length multivariate time series, such as MIMIC-III's 24 hourly measurements."""

from __future__ import annotations

from torch import Tensor, nn


class GRUEncoder(nn.Module):
    """One-layer GRU over ``(batch, time, features)``.

    Returns the last hidden state ``(batch, hidden_size)``, or, when ``num_steps`` is given, the hidden
    states of all ``num_steps`` steps flattened to ``(batch, num_steps * hidden_size)``: MultiBench's
    MIMIC models read all 24 steps this way (their late-fusion head takes 10 + 24 * 30 = 730 features).

    Args:
        input_size: features per time step.
        hidden_size: GRU state size.
        num_steps: None for the last state; the (fixed) sequence length to read every step.
    """

    def __init__(self, input_size: int, hidden_size: int, num_steps: int | None = None) -> None:
        super().__init__()
        self.gru = nn.GRU(input_size, hidden_size, batch_first=True)
        self.num_steps = num_steps
        self.out_features = hidden_size if num_steps is None else hidden_size * num_steps

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[2] != self.gru.input_size:
            raise ValueError(
                f"GRUEncoder: expected (batch, time, {self.gru.input_size}), got {tuple(x.shape)}"
            )
        if self.num_steps is not None and x.shape[1] != self.num_steps:
            raise ValueError(f"GRUEncoder: expected {self.num_steps} time steps, got {x.shape[1]}")
        outputs, last = self.gru(x)
        return last[-1] if self.num_steps is None else outputs.flatten(1)
