"""Prefill ahead and while typing: background work never changes a result, is used by the next
turn, yields to a request within one chunk, and is never reused once the conversation changed."""

from __future__ import annotations

import asyncio
import json

import numpy as np

from qwen35web.runtime.conversation import Conversation
from qwen35web.runtime.loaded_model import Runtime
from qwen35web.runtime.native.open_bundle import open_native
from qwen35web.runtime.prefill_ahead import DEFAULT_AHEAD_CHUNK, next_turn_opening
from qwen35web.runtime.sampling import SamplingParams
from tests.run_async import run_async

GREEDY = SamplingParams(greedy=True, max_new_tokens=20)
USER_TURNS = ["Hello there, who are you?", "Tell me about json and its uses.", "And pathlib?"]


async def _fresh(bundle, prompt_ids: list[int]) -> tuple[np.ndarray, list[int]]:
    """Last logits and greedy tokens of `prompt_ids` from a runtime that keeps nothing."""
    runtime = await open_native(bundle, kept_states_budget=0)
    try:
        logits = np.array(await runtime.logits(prompt_ids))
        return logits, (await runtime.generate(prompt_ids, GREEDY)).tokens
    finally:
        await runtime.close()


async def _prefilled_logits(runtime: Runtime, prompt_ids: list[int]) -> np.ndarray:
    """The logits the next turn would sample from, reached from whatever the runtime keeps."""
    async with runtime.ahead.hold(keep_target=True):
        await runtime.generator.prefill(prompt_ids)
        return np.array(await runtime.runner.last_logits())


async def _typing(conversation: Conversation, message: str) -> None:
    """A person typing `message` a few characters at a time, each draft handed over and worked on."""
    for end in range(4, len(message) + 1, 4):
        conversation.prepare(message[:end])
        await asyncio.sleep(0)  # a keystroke's gap: the background gets one chunk in
    conversation.prepare(message)
    await conversation.runtime.ahead.settled()


async def _converse(bundle, typing: bool):
    runtime = await open_native(bundle)
    conversation = Conversation(runtime, system="Be brief.")
    turns = []
    for text in USER_TURNS:
        await runtime.ahead.settled()  # the person reads the reply: the opening is prefilled
        opening = next_turn_opening(runtime, conversation.messages, True) if conversation.messages[1:] else []
        if typing:
            await _typing(conversation, text)
        prompt = conversation.prompt_for(text)
        logits = await _prefilled_logits(runtime, prompt.ids)
        turns.append((prompt.ids, opening, logits, await conversation.say(text, GREEDY)))
    stats = runtime.ahead.stats
    await runtime.close()
    return turns, stats


def _check_against_fresh(bundle, turns) -> None:
    for prompt_ids, _, logits, result in turns:
        fresh_logits, fresh_tokens = run_async(_fresh(bundle, prompt_ids))
        assert np.abs(logits - fresh_logits).max() <= 1e-5
        assert result.tokens == fresh_tokens


def test_prefill_ahead_is_used_and_changes_nothing(export_bundle):
    bundle = export_bundle("text", "fused")
    turns, stats = run_async(_converse(bundle, typing=False))
    _check_against_fresh(bundle, turns)
    assert stats.prefilled_tokens > 0
    for prompt_ids, opening, _, result in turns[1:]:
        # The reply as re-rendered and the user turn's opening were held before the send.
        assert len(opening) > 0 and prompt_ids[: len(opening)] == opening
        assert result.reused_tokens >= len(opening)


def test_drafts_prefill_the_stable_prefix_and_change_nothing(export_bundle):
    bundle = export_bundle("text", "fused")
    turns, _ = run_async(_converse(bundle, typing=True))
    _check_against_fresh(bundle, turns)
    for prompt_ids, opening, _, result in turns:
        # More than the opening was held: the typed message's words, all but the last.
        assert result.reused_tokens > len(opening)
        assert result.prefilled_tokens < len(prompt_ids) - len(opening)


async def _one_forward_after_send(bundle):
    """A typed turn on a last-position-logits bundle (the page's), its prefill's forwards counted;
    then the same turn again (a regenerate)."""
    runtime = await open_native(bundle)
    conversation = Conversation(runtime, system="Be brief.")
    await conversation.say(USER_TURNS[0], GREEDY)
    await runtime.ahead.settled()
    await _typing(conversation, USER_TURNS[1])
    prompt = conversation.prompt_for(USER_TURNS[1])
    forwards: list[int] = []
    forward, prefill = runtime.runner.forward, runtime.generator.prefill

    async def counted(ids, *args, **kwargs):
        forwards.append(len(ids))
        return await forward(ids, *args, **kwargs)

    async def watched(*args, **kwargs):
        runtime.runner.forward = counted  # type: ignore[method-assign]
        try:
            return await prefill(*args, **kwargs)
        finally:
            runtime.runner.forward = forward  # type: ignore[method-assign]

    runtime.generator.prefill = watched  # type: ignore[method-assign]
    result = await conversation.say(USER_TURNS[1], GREEDY)
    await runtime.ahead.settled()  # the next turn's opening, past the history end
    conversation.messages = conversation.messages[:-2]
    again = await conversation.say(USER_TURNS[1], GREEDY)
    await runtime.close()
    return prompt, forwards, result, again


def test_the_tokens_left_after_send_take_one_forward(export_bundle):
    """With prefill ahead, no history snapshot splits the few tokens left after Send in two forwards
    (each costs the weights once); the regenerate resumes from the prompt's own snapshot."""
    bundle = export_bundle("text", "fused", logits="last")
    prompt, forwards, result, again = run_async(_one_forward_after_send(bundle))
    # The turn resumed inside the history (the draft's last word was left), so the old history
    # snapshot would have split the rest: one forward here.
    assert 0 < result.reused_tokens < prompt.history_tokens < len(prompt.ids)
    assert forwards == [result.prefilled_tokens]
    _, fresh_tokens = run_async(_fresh(bundle, prompt.ids))
    assert result.tokens == fresh_tokens == again.tokens
    assert again.prefilled_tokens == 0


async def _send_during_background(bundle):
    runtime = await open_native(bundle)
    conversation = Conversation(runtime)
    await conversation.say("Hello there.", GREEDY)
    long_draft = "Tell me everything about json, yaml, toml and ini files in Python " * 4
    conversation.prepare(long_draft)
    for _ in range(1000):  # the person types: the background runs chunks meanwhile
        if runtime.ahead.stats.prefilled_tokens >= 2 * DEFAULT_AHEAD_CHUNK:
            break
        await asyncio.sleep(0)
    assert runtime.ahead.stats.running, "the draft must still be in work when the message is sent"
    at_send = runtime.ahead.stats.prefilled_tokens
    started = {}
    real_prefill = runtime.generator.prefill

    async def watched(*args, **kwargs):
        started["background_tokens"] = runtime.ahead.stats.prefilled_tokens
        return await real_prefill(*args, **kwargs)

    runtime.generator.prefill = watched  # type: ignore[method-assign]
    text = "Tell me about json instead."  # the edit deleted most of the prefilled draft
    prompt = conversation.prompt_for(text)
    result = await conversation.say(text, GREEDY)
    stats = runtime.ahead.stats
    await runtime.close()
    return prompt.ids, result, at_send, started["background_tokens"], stats


def test_a_send_preempts_background_work_within_one_chunk(export_bundle):
    bundle = export_bundle("text", "fused")
    prompt_ids, result, at_send, at_prefill, stats = run_async(_send_during_background(bundle))
    assert at_prefill - at_send <= DEFAULT_AHEAD_CHUNK
    assert stats.preempted >= 1
    _, fresh_tokens = run_async(_fresh(bundle, prompt_ids))
    assert result.tokens == fresh_tokens


async def _reset_mid_work(bundle):
    runtime = await open_native(bundle)
    conversation = Conversation(runtime, system="Be brief.")
    await conversation.say("Hello there.", GREEDY)
    conversation.prepare("A long message about many things, one after another, " * 3)
    await asyncio.sleep(0)
    conversation.reset()  # a new chat while the background works on the old one
    await runtime.ahead.settled()
    prompt = conversation.prompt_for("Who are you?")
    result = await conversation.say("Who are you?", GREEDY)
    # A regenerate: the same turn again from the kept states (the reply's opening was prefilled).
    conversation.messages = conversation.messages[:-2]
    await runtime.ahead.settled()
    again = await conversation.say("Who are you?", GREEDY)
    await runtime.close()
    return prompt.ids, result, again


def test_a_reset_or_regenerate_never_reuses_a_stale_state(export_bundle):
    bundle = export_bundle("text", "fused")
    prompt_ids, result, again = run_async(_reset_mid_work(bundle))
    _, fresh_tokens = run_async(_fresh(bundle, prompt_ids))
    assert result.tokens == fresh_tokens == again.tokens
    assert again.prefilled_tokens < again.prompt_tokens


async def _logits_during_background(bundle):
    runtime = await open_native(bundle)
    conversation = Conversation(runtime)
    await conversation.say("Hello there.", GREEDY)
    conversation.prepare("Some draft that is being typed right now")
    await asyncio.sleep(0)
    ids = runtime.tokenizer.encode("A plain prompt")
    logits = np.array(await runtime.logits(ids))  # holds the runner: the draft waits, then goes on
    await runtime.ahead.settled()
    held = runtime.ahead.stats.held_tokens == runtime.ahead.stats.target_tokens
    await runtime.close()
    return ids, logits, held


def test_other_requests_hold_the_background_off_and_it_goes_on_after(export_bundle):
    bundle = export_bundle("text", "fused")
    ids, logits, held = run_async(_logits_during_background(bundle))
    fresh_logits, _ = run_async(_fresh(bundle, ids))
    assert np.abs(logits - fresh_logits).max() <= 1e-5
    assert held


async def _web_session(bundle):
    from qwen35web.runtime.browser.session import WebSession

    session = WebSession(await open_native(bundle), "tiny")
    messages = [{"role": "user", "content": "Hello there."}, {"role": "assistant", "content": "Hi."}]
    draft = json.dumps({"messages": [*messages, {"role": "user", "content": "Tell me about json and"}]})
    prepared = json.loads(await session.prepare(draft))
    await session.runtime.ahead.settled()
    ahead = json.loads(await session.stats())["ahead"]
    bad = [json.loads(await session.prepare(text)) for text in ("[1]", '{"messages": 3}', "not json")]
    await session.runtime.close()
    return prepared, ahead, bad


def test_the_web_session_prepares_drafts_and_refuses_bad_input(export_bundle):
    prepared, ahead, bad = run_async(_web_session(export_bundle("text", "fused")))
    assert prepared["targetTokens"] > 0
    assert ahead["heldTokens"] == ahead["targetTokens"] == prepared["targetTokens"]
    assert ahead["prefilledTokens"] > 0 and not ahead["running"]
    assert all(b["errorType"] == "GenerationInputError" for b in bad), bad


async def _switch_models_mid_draft(first_bundle, second_bundle):
    """A model switch while a draft is prefilled: the first model closes (its background work
    stopped first), the second answers the same conversation."""
    runtime = await open_native(first_bundle)
    conversation = Conversation(runtime, system="Be brief.")
    await conversation.say(USER_TURNS[0], GREEDY)
    conversation.prepare(USER_TURNS[1])
    await asyncio.sleep(0)  # one chunk under way
    task = runtime.ahead._task
    in_flight = task is not None and not task.done()
    await runtime.close()
    other = await open_native(second_bundle)
    switched = Conversation(other, messages=conversation.messages)
    prompt_ids = switched.prompt_for(USER_TURNS[1]).ids
    result = await switched.say(USER_TURNS[1], GREEDY)
    await other.close()
    return in_flight, prompt_ids, result


def test_a_model_switch_mid_draft_closes_cleanly_and_the_next_model_answers_exactly(export_bundle):
    first, second = export_bundle("text", "fused"), export_bundle("text", "portable")
    in_flight, prompt_ids, result = run_async(_switch_models_mid_draft(first, second))
    assert in_flight
    assert result.tokens == run_async(_fresh(second, prompt_ids))[1]
