"""A question encoder trained from scratch: word embeddings and a GRU that skips the padding."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence


class QuestionEncoder(nn.Module):
    """Embedding + one-layer GRU over padded token ids ``(batch, length)``; returns the last real state.

    Sequences are packed by their true length (the number of non-padding ids), so padding never
    enters the GRU and a question encodes the same whatever it is padded to. An all-padding row
    (a withheld question is zero-filled) is read as one padding token instead of failing.

    Args:
        vocab_size: number of token ids (including padding and unknown).
        embedding_dim: size of each word vector.
        hidden_size: GRU state size, the returned feature size.
        padding_idx: the id used for padding.
    """

    def __init__(
        self, vocab_size: int, embedding_dim: int = 32, hidden_size: int = 64, padding_idx: int = 0
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        self.gru = nn.GRU(embedding_dim, hidden_size, batch_first=True)
        self.padding_idx = padding_idx
        self.out_features = hidden_size

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.dim() != 2 or tokens.is_floating_point():
            raise ValueError(
                f"QuestionEncoder: expected integer token ids (batch, length), got {tuple(tokens.shape)} "
                f"{tokens.dtype}"
            )
        lengths = (tokens != self.padding_idx).sum(dim=1).clamp(min=1)
        packed = pack_padded_sequence(
            self.embedding(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        _, last = self.gru(packed)
        return last[-1]
