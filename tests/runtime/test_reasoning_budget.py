"""The reasoning budget: after N reasoning tokens the closing tokens are fed, the model answers, and
the state is exactly that of the text shown (a next call resumes from it; a fresh prefill of the
same tokens gives the same logits; the recorded conversation renders the fed text)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qwen35web.runtime.chat import render_chat
from qwen35web.runtime.conversation import Conversation
from qwen35web.runtime.errors import GenerationInputError
from qwen35web.runtime.native.open_bundle import open_native
from qwen35web.runtime.reasoning_budget import ReasoningBudget, closing_text
from qwen35web.runtime.sampling import DEFAULT_NUDGE, SamplingParams
from tests.run_async import run_async

# Our own test template, Qwen-like: the generation prompt opens the reasoning (forced open), and an
# assistant turn is rendered with its reasoning as `<think>\n…\n</think>\n\n` before the answer.
THINKING_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['role'] == 'assistant' and message.get('reasoning_content') %}"
    "<think>\n{{ message['reasoning_content'] }}\n</think>\n\n{% endif %}"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)
OPEN_PROMPT = "<|im_start|>user\nWhat is a list?<|im_end|>\n<|im_start|>assistant\n<think>\n"
BUDGET = 6


def test_the_budget_counts_reasoning_only_and_gives_the_closing_tokens_once():
    class Letters:  # one character per token: ids are code points
        def encode(self, text):
            return [ord(c) for c in text]

        def decode(self, ids, skip_special_tokens=False):
            return "".join(map(chr, ids))

        def stream_decoder(self, skip_special_tokens=False):
            class Decoder:
                def push(self, token):
                    return chr(token)

            return Decoder()

    letters = Letters()
    forced = ReasoningBudget(letters, letters.encode("user: hi\n<think>\n"), 3, "Enough.")
    assert [forced.push(ord(c)) for c in "ab"] == [[], []]
    assert letters.decode(forced.push(ord("c"))) == "\n\nEnough.\n</think>\n\n" and forced.cut
    assert forced.push(ord("d")) == []
    opened_by_model = ReasoningBudget(letters, letters.encode("user: hi\n"), 2, "")
    assert [opened_by_model.push(ord(c)) for c in " <think>x"] == [[]] * 9  # the tag itself is free
    assert letters.decode(opened_by_model.push(ord("y"))) == "\n</think>\n\n"
    closed_in_time = ReasoningBudget(letters, letters.encode("<think>\n"), 12, "")
    assert all(closed_in_time.push(ord(c)) == [] for c in "ok</think>\n\nanswer that is long")
    answer_only = ReasoningBudget(letters, letters.encode("user: hi\n"), 1, "")
    assert all(answer_only.push(ord(c)) == [] for c in "An answer.")
    assert not (closed_in_time.cut or answer_only.cut)


def test_a_budget_must_be_positive():
    for value in (0, -3, 1.5, True):
        with pytest.raises(GenerationInputError, match="reasoning_budget"):
            SamplingParams(reasoning_budget=value)


def test_the_state_after_the_closing_tokens_is_that_of_a_fresh_prefill(export_bundle):
    bundle = export_bundle("text", "fused")

    async def go():
        runtime = await open_native(bundle)
        try:
            prompt = runtime.tokenizer.encode(OPEN_PROMPT)
            closing = runtime.tokenizer.encode(closing_text(DEFAULT_NUDGE))
            # One answer token after the closing ones; no end of sequence before it.
            steps = BUDGET + 1
            params = SamplingParams(
                greedy=True, reasoning_budget=BUDGET, max_new_tokens=steps, min_new_tokens=steps
            )
            result = await runtime.generate(prompt, params)
            held = list(runtime.runner.token_ids)
            kept_logits = np.asarray(await runtime.runner.last_logits())
            fresh_logits = np.asarray(await runtime.logits(prompt + result.tokens[:-1]))
            # A next call that extends the reply resumes from the kept state.
            follow = await runtime.generate(
                prompt + result.tokens + runtime.tokenizer.encode("<|im_end|>\n"),
                SamplingParams(greedy=True, max_new_tokens=2),
            )
            return prompt, closing, result, held, kept_logits, fresh_logits, follow
        finally:
            await runtime.close()

    prompt, closing, result, held, kept, fresh, follow = run_async(go())
    assert result.reasoning_cut
    assert result.tokens[BUDGET : BUDGET + len(closing)] == closing
    assert len(result.tokens) == BUDGET + len(closing) + 1
    assert DEFAULT_NUDGE in result.text and "</think>" in result.text
    assert held == prompt + result.tokens[:-1]  # the closing tokens went through the model
    assert np.abs(kept - fresh).max() <= 1e-4
    assert result.tokens[-1] == int(np.argmax(fresh))  # the answer's first token follows from them
    assert follow.reused_tokens == len(held)


def test_the_recorded_turn_renders_the_fed_text_and_the_next_turn_reuses_it(export_bundle):
    bundle = export_bundle("text", "fused")

    async def go():
        runtime = await open_native(bundle)
        runtime.manifest = dataclasses.replace(runtime.manifest, chat_template=THINKING_TEMPLATE)
        conversation = Conversation(runtime)
        params = SamplingParams(temperature=1.0, seed=5, reasoning_budget=BUDGET, max_new_tokens=24)
        first_prompt = conversation.prompt_for("What is a list?")
        first = await conversation.say("What is a list?", params)
        second_prompt = conversation.prompt_for("And a dict?")
        second = await conversation.say("And a dict?", params)
        await runtime.close()
        return conversation.messages, first_prompt, first, second_prompt, second

    messages, first_prompt, first, second_prompt, second = run_async(go())
    assert first.reasoning_cut
    reply = messages[1]
    assert reply["role"] == "assistant" and reply["reasoning_content"].endswith(DEFAULT_NUDGE)
    rendered = render_chat(THINKING_TEMPLATE, messages[:2], add_generation_prompt=False)
    assert f"{DEFAULT_NUDGE}\n</think>\n\n{reply['content']}<|im_end|>" in rendered
    assert second.reused_tokens >= first_prompt.history_tokens > 0
    assert second.reused_tokens + second.prefilled_tokens == len(second_prompt.ids)
