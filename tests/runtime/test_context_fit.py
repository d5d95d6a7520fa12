"""context_fit: a full conversation is refused, or — only when asked — loses its fewest oldest whole
turns (system messages and the message being answered always stay), leaving room for the reply."""

from __future__ import annotations

import pytest

from qwen35web.runtime.context_fit import ContextFullError, fit, turn_starts
from qwen35web.runtime.prompt import Prompt

TURN_OVERHEAD = 3  # tokens a message costs besides its words (like <|im_start|>role … <|im_end|>)


def render(messages: list[dict]) -> Prompt:
    """One token per word plus a fixed overhead per message and for the generation prompt."""
    count = sum(len(m["content"].split()) + TURN_OVERHEAD for m in messages) + 2
    return Prompt(list(range(count)))


def _chat(turns: int, words: int = 10, system: bool = True) -> list[dict]:
    messages = [{"role": "system", "content": "be brief"}] if system else []
    for index in range(turns):
        messages.append({"role": "user", "content": " ".join([f"q{index}"] * words)})
        messages.append({"role": "assistant", "content": " ".join([f"a{index}"] * words)})
    messages.append({"role": "user", "content": "the new question"})
    return messages


def test_turns_start_at_user_messages_after_the_system_ones():
    messages = _chat(2)
    assert turn_starts(messages) == [1, 3, 5]
    assert turn_starts(_chat(1, system=False)) == [0, 2]


def test_a_conversation_that_fits_is_left_alone_dropping_or_not():
    messages = _chat(3)
    needed = len(render(messages).ids)
    for drop in (False, True):
        fitted = fit(render, messages, context=needed + 20, reply_room=10, drop_oldest=drop)
        assert fitted.messages == messages and fitted.dropped_messages == fitted.dropped_turns == 0
        assert fitted.prompt.ids == render(messages).ids


def test_a_full_conversation_is_refused_unless_asked():
    messages = _chat(3)
    needed = len(render(messages).ids)
    with pytest.raises(ContextFullError, match="start a new chat"):
        fit(render, messages, context=needed, reply_room=10)
    # Without drop_oldest a reply of one token is enough: the reply room is not asked for.
    assert fit(render, messages, context=needed + 2, reply_room=10).dropped_messages == 0


@pytest.mark.parametrize("context", [40, 60, 80, 100])
def test_the_fewest_oldest_turns_go_and_the_reply_has_room(context):
    messages = _chat(4)
    room = 10
    fitted = fit(render, messages, context=context, reply_room=room, drop_oldest=True)
    assert fitted.dropped_turns > 0
    assert fitted.messages[0] == messages[0]  # the system message stays
    assert fitted.messages[-1] == messages[-1]  # the message being answered stays
    assert fitted.messages[1:] == messages[1 + fitted.dropped_messages :]  # whole oldest turns went
    assert fitted.dropped_messages == 2 * fitted.dropped_turns
    assert len(fitted.prompt.ids) + room < context
    assert fitted.prompt.ids == render(fitted.messages).ids
    # One turn fewer dropped would not have left the room: the fewest went.
    fewer = [messages[0], *messages[1 + fitted.dropped_messages - 2 :]]
    assert len(render(fewer).ids) + room >= context


def test_a_short_reply_room_is_taken_when_a_whole_one_cannot_fit():
    messages = _chat(2)
    alone = len(render([messages[0], messages[-1]]).ids)
    fitted = fit(render, messages, context=alone + 3, reply_room=50, drop_oldest=True)
    assert fitted.messages == [messages[0], messages[-1]] and fitted.dropped_turns == 2


def test_a_message_that_alone_does_not_fit_is_refused():
    messages = _chat(2)
    alone = len(render([messages[0], messages[-1]]).ids)
    with pytest.raises(ContextFullError, match="alone needs"):
        fit(render, messages, context=alone, reply_room=8, drop_oldest=True)
