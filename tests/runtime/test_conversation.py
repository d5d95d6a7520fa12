"""Conversations: each turn renders the whole chat, reuses what the model already holds, and gives
exactly what a fresh prefill of the same rendered prompt gives — also when the template renders a
past reply differently from the tokens that were generated."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from qwen35web.runtime.context_fit import ContextFullError
from qwen35web.runtime.conversation import Conversation
from qwen35web.runtime.native.open_bundle import open_native
from qwen35web.runtime.sampling import SamplingParams
from tests.run_async import run_async

# Like Qwen's templates: the generation prompt opens the reasoning, and a past assistant turn is
# rendered from its (stripped) content only, without the reasoning the model wrote.
STRIPPING_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "<|im_start|>assistant\n{{ message['content'] | trim }}<|im_end|>\n"
    "{% else %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)
USER_TURNS = ["Hello there, who are you?", "Tell me about json.", "And pathlib?"]
PARAMS = SamplingParams(temperature=1.0, seed=4, max_new_tokens=24)


async def _converse(bundle, template: str | None, budget: int, system: str | None = "Be brief."):
    runtime = await open_native(bundle, kept_states_budget=budget)
    if template is not None:
        runtime.manifest = dataclasses.replace(runtime.manifest, chat_template=template)
    conversation = Conversation(runtime, system=system)
    turns = []
    for text in USER_TURNS:
        prompt = conversation.prompt_for(text)
        turns.append((prompt, await conversation.say(text, PARAMS)))
    await runtime.close()
    return conversation.messages, turns


@pytest.mark.parametrize("template", [None, STRIPPING_TEMPLATE], ids=["bundle-template", "stripping"])
def test_turns_equal_fresh_prefills_of_the_same_prompts(export_bundle, template):
    bundle = export_bundle("text", "fused")
    messages, turns = run_async(_converse(bundle, template, budget=64 << 20))
    fresh_messages, fresh_turns = run_async(_converse(bundle, template, budget=0))
    assert messages == fresh_messages
    for (prompt, result), (fresh_prompt, fresh) in zip(turns, fresh_turns, strict=True):
        assert prompt.ids == fresh_prompt.ids
        assert result.tokens == fresh.tokens
        assert fresh.reused_tokens == 0 and fresh.prefilled_tokens == len(prompt.ids)
        assert result.reused_tokens + result.prefilled_tokens == result.prompt_tokens == len(prompt.ids)
    for (previous, _), (_, result) in itertools.pairwise(turns):
        # At least the conversation before the previous generation prompt is reused.
        assert result.reused_tokens >= previous.history_tokens > 0


def test_a_re_rendered_reply_resumes_from_the_state_before_it(export_bundle):
    messages, turns = run_async(_converse(export_bundle("text", "fused"), STRIPPING_TEMPLATE, 64 << 20))
    for prompt, result in turns:
        assert prompt.opens_reasoning
        assert result.reasoning and result.text == ""  # the tiny model never closes its <think>
    for message in messages:
        if message["role"] == "assistant":
            assert message["content"] == "" and message["reasoning_content"]
    for (previous, _), (_, result) in itertools.pairwise(turns):
        # The generated "<think>\n…" is not what the template renders next time: the turn resumes
        # exactly where the previous conversation ended, before its generation prompt.
        assert result.reused_tokens == previous.history_tokens


def test_a_full_context_is_said_never_truncated(export_bundle):
    async def go():
        runtime = await open_native(export_bundle("text", "fused"))
        conversation = Conversation(runtime)
        with pytest.raises(ContextFullError, match="start a new chat"):
            await conversation.say("json " * 5000, PARAMS)
        untouched = list(conversation.messages)
        conversation.runtime.generator.max_context = 80
        result = await conversation.say("Hi", SamplingParams(seed=1, max_new_tokens=500, min_new_tokens=500))
        await runtime.close()
        return untouched, result

    untouched, result = run_async(go())
    assert untouched == []  # the refused message was not recorded
    assert result.stop_reason == "context_full"
    assert result.prompt_tokens + len(result.tokens) == 80


def test_thinking_off_reaches_the_template(export_bundle):
    template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n"
        "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n"
        "{% else %}<think>\n{% endif %}{% endif %}"
    )

    async def go():
        runtime = await open_native(export_bundle("text", "fused"))
        runtime.manifest = dataclasses.replace(runtime.manifest, chat_template=template)
        thinking = Conversation(runtime).prompt_for("Hi")
        plain = Conversation(runtime, enable_thinking=False).prompt_for("Hi")
        await runtime.close()
        return runtime.tokenizer, thinking, plain

    tokenizer, thinking, plain = run_async(go())
    assert thinking.opens_reasoning and not plain.opens_reasoning
    assert tokenizer.decode(plain.ids).endswith("<think>\n\n</think>\n\n")


def test_asked_to_it_drops_the_oldest_turns_and_says_so(export_bundle):
    params = SamplingParams(temperature=1.0, seed=2, max_new_tokens=12, min_new_tokens=12)

    async def go():
        runtime = await open_native(export_bundle("text", "fused"), max_context=120)
        conversation = Conversation(runtime, system="Be brief.")
        results = [await conversation.say(text, params, drop_oldest=True) for text in USER_TURNS * 3]
        refused = Conversation(runtime, system="Be brief.", messages=conversation.messages)
        with pytest.raises(ContextFullError, match="start a new chat"):
            for text in USER_TURNS * 3:  # without drop_oldest the same conversation fills up
                await refused.say(text, params)
        await runtime.close()
        return conversation, results

    conversation, results = run_async(go())
    dropping = [r for r in results if r.dropped_turns]
    assert dropping, [r.prompt_tokens for r in results]
    for result in results:
        assert result.prompt_tokens + params.max_new_tokens < 120  # room for the whole reply
        assert result.stop_reason != "context_full"
    for previous, result in itertools.pairwise(results):
        if result.dropped_turns:
            assert result.dropped_messages == 2 * result.dropped_turns
            # The kept states run through the dropped turns: the rest is read again (a prefix that
            # repeats word for word, like a repeated first message, may still be reused).
            assert result.reused_tokens < previous.prompt_tokens
            assert result.reused_tokens + result.prefilled_tokens == result.prompt_tokens
    assert conversation.messages[0] == {"role": "system", "content": "Be brief."}
    assert conversation.messages[-2]["content"] == USER_TURNS[-1]
    # Nothing vanishes unsaid: the dropped turns are kept apart, oldest first.
    assert len(conversation.dropped) == sum(r.dropped_messages for r in results)
    assert conversation.dropped[0]["content"] == USER_TURNS[0]
    assert len(conversation.messages) + len(conversation.dropped) == 1 + 2 * len(results)
