"""A reply split into its reasoning (`<think>…</think>`) and its answer, while it streams.

Qwen3.5 writes its reasoning first. Either the generation prompt already opened it (`<think>\\n`
at the end of the prompt) or the model opens it itself as the first thing it writes. Each streamed
`Piece` says which part it belongs to; the tags are never shown. Newlines around each part are
dropped the way Qwen's templates drop them when they render a past turn (`reasoning.strip('\\n')`,
`content.lstrip('\\n')`), so what is shown is what the next turn's template will render.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from qwen35web.runtime.prompt import THINK_CLOSE, THINK_OPEN

Kind = Literal["reasoning", "text", "tool_call"]


@dataclass(frozen=True)
class Piece:
    kind: Kind
    text: str
    call: Any = None  # a tool_calls.ToolCall when kind is "tool_call" (text: its raw markup)


def _partial_tag_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


class ReasoningSplitter:
    def __init__(self, starts_in_reasoning: bool = False):
        self.kind: Kind = "reasoning" if starts_in_reasoning else "text"
        self.may_open = not starts_in_reasoning  # a <think> only counts before any answer text
        self.pending = ""  # text not yet given out: a partial tag, or newlines that may be dropped
        self.part_started = False  # the current part has shown something (leading newlines dropped)
        self.reasoning = ""
        self.text = ""

    def push(self, text: str) -> list[Piece]:
        self.pending += text
        pieces: list[Piece] = []
        while self.pending:
            if self.kind == "text" and self.may_open:
                if not self._settle_opening():
                    break
                continue
            if self.kind == "reasoning":
                if not self._reasoning_step(pieces):
                    break
                continue
            self._emit(pieces, self.pending)
            self.pending = ""
        return pieces

    def _settle_opening(self) -> bool:
        """Before any answer: is this a <think>? False while the text could still become one."""
        head = self.pending.lstrip()
        if head.startswith(THINK_OPEN):
            self.pending = head[len(THINK_OPEN) :]
            self.kind, self.may_open, self.part_started = "reasoning", False, False
            return True
        if THINK_OPEN.startswith(head):  # all whitespace, or a partial tag: wait for more
            return False
        self.may_open = False
        return True

    def _reasoning_step(self, pieces: list[Piece]) -> bool:
        end = self.pending.find(THINK_CLOSE)
        if end >= 0:
            self._emit(pieces, self.pending[:end].rstrip("\n"))
            self.pending = self.pending[end + len(THINK_CLOSE) :]
            self.kind, self.part_started = "text", False
            return True
        held = _partial_tag_suffix(self.pending, THINK_CLOSE)
        body = self.pending[: len(self.pending) - held]
        # Trailing newlines may be the ones before </think>: hold them until more text comes.
        shown = body.rstrip("\n")
        self._emit(pieces, shown)
        self.pending = self.pending[len(shown) :]
        return False

    def _emit(self, pieces: list[Piece], text: str) -> None:
        if not self.part_started:
            text = text.lstrip("\n")
        if not text:
            return
        self.part_started = True
        if self.kind == "reasoning":
            self.reasoning += text
        else:
            self.text += text
        if pieces and pieces[-1].kind == self.kind:
            pieces[-1] = Piece(self.kind, pieces[-1].text + text)
        else:
            pieces.append(Piece(self.kind, text))

    def flush(self) -> list[Piece]:
        """The end of the reply: what was held is shown as it is (an unclosed reasoning stays so)."""
        pieces: list[Piece] = []
        rest, self.pending = self.pending, ""
        if self.kind == "reasoning":
            rest = rest.rstrip("\n")
        self._emit(pieces, rest)
        return pieces
