"""Token streams and the deterministic order in which training windows are visited."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from tokenizers import Tokenizer

from devtools.train_tiny.corpus import Document


def token_stream(tokenizer: Tokenizer, documents: list[Document], separator_id: int) -> torch.Tensor:
    """[N] int64: separator, doc 0, separator, doc 1, ... so every document's first token is predicted."""
    encodings = tokenizer.encode_batch([doc.text for doc in documents])
    ids: list[int] = [separator_id]
    for encoding in encodings:
        ids.extend(encoding.ids)
        ids.append(separator_id)
    return torch.tensor(ids, dtype=torch.int64)


@dataclass
class WindowSampler:
    """Batches of [B, T + 1] windows cut from the stream, reshuffled each epoch from a seeded generator.

    Each epoch also shifts the window grid by a random offset in [0, T), so the model does not see
    the same cut points twice.
    """

    stream: torch.Tensor  # [N]
    window: int  # T + 1 tokens: inputs are [:-1], targets [1:]
    batch_size: int
    seed: int

    def __post_init__(self) -> None:
        if len(self.stream) < 2 * self.window:
            raise ValueError(f"stream of {len(self.stream)} tokens is too short for windows of {self.window}")
        self._generator = torch.Generator().manual_seed(self.seed)

    def _epoch_starts(self) -> torch.Tensor:
        offset = int(torch.randint(0, self.window - 1, (1,), generator=self._generator))
        starts = torch.arange(offset, len(self.stream) - self.window + 1, self.window - 1)
        return starts[torch.randperm(len(starts), generator=self._generator)]

    def batches(self) -> Iterator[torch.Tensor]:
        """Endless: [B, T + 1] int64 per batch; an epoch's last incomplete batch is dropped."""
        steps = torch.arange(self.window)
        while True:
            starts = self._epoch_starts()
            for first in range(0, len(starts) - self.batch_size + 1, self.batch_size):
                yield self.stream[starts[first : first + self.batch_size, None] + steps]


def evaluation_batches(
    stream: torch.Tensor, context: int, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs [b, t], targets [b, t]) covering every position of the stream after the first exactly once.

    Full windows of `context` are stacked `batch_size` at a time; the stream's tail is a last, shorter batch.
    """
    full = (len(stream) - 1) // context
    inputs = stream[: full * context].reshape(full, context)  # [W, T]
    targets = stream[1 : full * context + 1].reshape(full, context)  # [W, T]
    for first in range(0, full, batch_size):
        yield inputs[first : first + batch_size], targets[first : first + batch_size]
    if full * context < len(stream) - 1:
        yield stream[None, full * context : -1], stream[None, full * context + 1 :]
