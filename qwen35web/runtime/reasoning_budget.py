"""A reasoning budget: after N reasoning tokens, close the reasoning and let the model answer.

Small Qwen3.5 models can reason in circles until `max_new_tokens` (the 0.8B's card warns of thinking
loops). With a budget, once N tokens of reasoning are generated the runtime feeds an optional short
nudge and the closing tag (`</think>\\n\\n`) through the model as if it had written them, then goes
on sampling: the answer follows. The fed tokens are part of the reply (its tokens, its text, the
reasoning part of the recorded message), so the model's state is exactly that of the text shown,
and a next turn or a saved conversation continues from it like from any other reply.

Reasoning is open from the start when the prompt ends inside `<think>` (the generation prompt
opened it), or once the reply itself begins with `<think>`; it is over at `</think>`. Tags are
read from the decoded text with special tokens kept, so it does not matter whether the tokenizer
has them as single tokens (the real vocabulary) or several pieces.
"""

from __future__ import annotations

from typing import Any

from qwen35web.runtime.prompt import THINK_CLOSE, THINK_OPEN, leaves_reasoning_open
from qwen35web.runtime.sampling import SamplingParams

CLOSING = "\n" + THINK_CLOSE + "\n\n"  # how Qwen's templates end a reasoning part
_PROMPT_TAIL = 16  # prompt tokens decoded to see whether the generation prompt left <think> open


def closing_text(nudge: str) -> str:
    """What is fed when the budget runs out: the nudge in a paragraph of its own, then the tag."""
    return ("\n\n" + nudge.strip() if nudge.strip() else "") + CLOSING


class ReasoningBudget:
    def __init__(self, tokenizer: Any, prompt_ids: list[int], budget: int, nudge: str):
        tail = tokenizer.decode(prompt_ids[-_PROMPT_TAIL:], skip_special_tokens=False)
        self.open = leaves_reasoning_open(tail)  # inside the reasoning now
        self.over = False  # closed (by the model or by us), or the reply began without reasoning
        self.budget = budget
        self.used = 0  # reasoning tokens generated so far
        self.cut = False  # the budget ran out and the closing tokens were given
        self.closing = tokenizer.encode(closing_text(nudge))
        self._decoder = tokenizer.stream_decoder(skip_special_tokens=False)
        self._text = ""  # the recent reply text a tag may be in

    @classmethod
    def for_prompt(
        cls, tokenizer: Any, prompt_ids: list[int], params: SamplingParams
    ) -> ReasoningBudget | None:
        if params.reasoning_budget is None:
            return None
        return cls(tokenizer, prompt_ids, params.reasoning_budget, params.reasoning_nudge)

    def push(self, token: int) -> list[int]:
        """Take one generated token; the tokens to feed after it (empty while the budget lasts)."""
        if self.over:
            return []
        self._text += self._decoder.push(token)
        if not self.open:
            head = self._text.lstrip()
            if head.startswith(THINK_OPEN):
                self.open, self._text = True, head[len(THINK_OPEN) :]
            elif not THINK_OPEN.startswith(head):  # the reply is an answer: no reasoning to limit
                self.over = True
            return []
        if THINK_CLOSE in self._text:
            self.over = True
            return []
        self._text = self._text[-len(THINK_CLOSE) :]
        self.used += 1
        if self.used < self.budget:
            return []
        self.over = self.cut = True
        return list(self.closing)
