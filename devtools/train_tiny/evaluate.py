"""Held-out perplexity and greedy samples: the figures the model card reports and the tests check."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from transformers import Qwen3_5ForCausalLM

from devtools.train_tiny.batches import evaluation_batches
from devtools.train_tiny.chat_template import TINY_CHAT_TEMPLATE
from devtools.train_tiny.demo_tools import DEMO_TOOLS
from qwen35web.runtime.chat import render_chat

# The card's fixed prompts: a plain continuation (the one the tests replay), a chat turn, a question
# that needs the calculator (the demo tools listed), and the same after the call's result came back.
CONTINUATION_PROMPT = "The module provides"
CHAT_QUESTION = "What does json.dumps do?"
TOOL_QUESTION = "What is 37 * 12?"
TOOL_EXPRESSION, TOOL_RESULT = "37 * 12", "444"
SAMPLE_NEW_TOKENS = 48


@dataclass(frozen=True)
class HeldOutScore:
    tokens: int
    loss: float  # mean negative log-likelihood per token, nats
    perplexity: float
    bits_per_byte: float  # tokenizer-independent: total NLL in bits over the held-out text's UTF-8 bytes


@torch.no_grad()
def held_out_score(
    model: Qwen3_5ForCausalLM, stream: torch.Tensor, text_bytes: int, context: int, batch_size: int = 8
) -> HeldOutScore:
    """Next-token NLL over every position of the held-out stream, each predicted once."""
    was_training = model.training
    model.eval()
    total_nll, total_tokens = 0.0, 0
    for inputs, targets in evaluation_batches(stream, context, batch_size):
        logits = model(input_ids=inputs, use_cache=False).logits  # [b, t, V]
        nll = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum")
        total_nll += float(nll)
        total_tokens += targets.numel()
    model.train(was_training)
    loss = total_nll / total_tokens
    return HeldOutScore(total_tokens, loss, math.exp(loss), total_nll / math.log(2) / text_bytes)


def chat_prompt(question: str) -> str:
    """The checkpoint's own chat template, rendered for one user turn and the assistant's opening."""
    return render_chat(TINY_CHAT_TEMPLATE, [{"role": "user", "content": question}])


def tool_prompt(question: str, result: str | None = None) -> str:
    """The demo tools listed and `question` asked; with `result`, also the expected calculator call
    and its result, so the model's next turn is the answer."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    if result is not None:
        call = {
            "type": "function",
            "function": {"name": "calculator", "arguments": {"expression": TOOL_EXPRESSION}},
        }
        messages += [
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "content": result, "tool_call_id": "call_1"},
        ]
    return render_chat(TINY_CHAT_TEMPLATE, messages, tools=DEMO_TOOLS)


@torch.no_grad()
def greedy_sample(
    model: Qwen3_5ForCausalLM, tokenizer: Tokenizer, prompt: str, max_new_tokens: int = SAMPLE_NEW_TOKENS
) -> dict[str, Any]:
    """transformers' greedy decoding (with its cache, i.e. the recurrent decode path) from `prompt`."""
    model.eval()
    prompt_ids = tokenizer.encode(prompt).ids
    config = model.config
    # transformers 5.23 types generate()'s self as a protocol mypy cannot match to the concrete class.
    output = model.generate(  # type: ignore[misc]
        torch.tensor([prompt_ids]),
        attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.int64),
        do_sample=False,
        max_new_tokens=max_new_tokens,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )
    new_ids = output[0, len(prompt_ids) :].tolist()
    return {
        "prompt": prompt,
        "token_ids": new_ids,
        "text": tokenizer.decode(new_ids, skip_special_tokens=False),
    }


def card_samples(
    model: Qwen3_5ForCausalLM, tokenizer: Tokenizer, max_new_tokens: int = SAMPLE_NEW_TOKENS
) -> dict[str, dict[str, Any]]:
    return {
        "continuation": greedy_sample(model, tokenizer, CONTINUATION_PROMPT, max_new_tokens),
        "chat": greedy_sample(model, tokenizer, chat_prompt(CHAT_QUESTION), max_new_tokens),
        "tool_call": greedy_sample(model, tokenizer, tool_prompt(TOOL_QUESTION), max_new_tokens),
        "tool_answer": greedy_sample(
            model, tokenizer, tool_prompt(TOOL_QUESTION, TOOL_RESULT), max_new_tokens
        ),
    }
