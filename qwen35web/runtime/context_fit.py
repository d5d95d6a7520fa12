"""Whether a conversation fits the model's context, and what to do when it does not.

By default a conversation that no longer fits is refused (ContextFullError: start a new chat); it is
never cut silently. Asked to (`drop_oldest`), the fewest oldest whole turns go instead — a turn is a
user message and what answered it, the leading system messages always stay — so that the rendered
conversation leaves room for a reply. The caller learns how many messages went and must say so: the
model then re-reads the rest in a fresh prefill (the kept states covered the dropped turns).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from qwen35web.runtime.chat import Message
from qwen35web.runtime.errors import GenerationInputError
from qwen35web.runtime.prompt import Prompt


class ContextFullError(GenerationInputError):
    """The conversation no longer fits the model's context: a new chat is needed (or dropped turns)."""

    code = "context-full"


@dataclass(frozen=True)
class Fitted:
    prompt: Prompt
    messages: list[Message]  # what was rendered: the given messages less the dropped ones
    dropped_messages: int = 0  # removed after the leading system messages
    dropped_turns: int = 0  # user turns among them


def turn_starts(messages: Sequence[Message]) -> list[int]:
    """Indices of the user messages after the leading system messages: where each turn begins."""
    head = 0
    while head < len(messages) and messages[head].get("role") == "system":
        head += 1
    return [i for i in range(head, len(messages)) if messages[i].get("role") == "user"]


def _without(messages: Sequence[Message], starts: list[int], turns: int) -> list[Message]:
    """`messages` less its `turns` oldest turns (leading system messages kept)."""
    if turns == 0:
        return list(messages)
    head = next(i for i, m in enumerate(messages) if m.get("role") != "system")
    return [*messages[:head], *messages[starts[turns] :]]


def _fewest_turns(fits: Callable[[int], bool], most: int) -> int | None:
    """The smallest count in [0, most] that fits (fewer tokens with every turn dropped), or None."""
    if not fits(most):
        return None
    low, high = 0, most
    while low < high:  # binary search: each probe renders and tokenises the whole conversation
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle + 1
    return low


def fit(
    render: Callable[[list[Message]], Prompt],
    messages: Sequence[Message],
    context: int,
    reply_room: int,
    drop_oldest: bool = False,
) -> Fitted:
    """Render `messages`; refuse them when they fill the context, or (`drop_oldest`) drop the fewest
    oldest turns that leave `reply_room` tokens for the reply (at least one). The last turn — the
    message being answered — is never dropped."""
    prompt = render(list(messages))
    needed = len(prompt.ids)
    room = max(1, min(reply_room, context // 2))
    if needed + 1 < context and (not drop_oldest or needed + room < context):
        return Fitted(prompt, list(messages))
    if not drop_oldest:
        raise ContextFullError(
            f"the conversation needs {needed} tokens and the context holds {context}: start a new chat"
        )
    starts = turn_starts(messages)
    most = max(0, len(starts) - 1)
    rendered: dict[int, Prompt] = {0: prompt}

    def fits(turns: int, room: int) -> bool:
        if turns not in rendered:
            rendered[turns] = render(_without(messages, starts, turns))
        return len(rendered[turns].ids) + room < context

    turns = _fewest_turns(lambda n: fits(n, room), most)
    if turns is None:  # no room for a whole reply even with one turn left: a shorter one, then
        turns = _fewest_turns(lambda n: fits(n, 1), most)
    if turns is None:
        raise ContextFullError(
            f"the last message alone needs {len(rendered[most].ids)} tokens and the context holds "
            f"{context}: write a shorter one or start a new chat"
        )
    kept = _without(messages, starts, turns)
    return Fitted(rendered[turns], kept, len(messages) - len(kept), turns)
