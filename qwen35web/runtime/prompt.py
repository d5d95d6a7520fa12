"""A prompt's token ids, and for a chat what the prefix cache and the reasoning split need to know.

A chat prompt is the conversation so far (the history) plus the template's generation prompt
(`<|im_start|>assistant\\n`, for Qwen3.5 often `<think>\\n` too). The history's token count is where
a kept state pays off: the next turn re-renders the history identically up to there, while a template
may render this turn's reply differently from the tokens that were generated (Qwen's templates
drop past reasoning and strip whitespace), so the end of this prompt is not always a prefix of the
next one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qwen35web.runtime.chat import Message, render_chat
from qwen35web.runtime.errors import GenerationInputError

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


@dataclass(frozen=True)
class Prompt:
    ids: list[int]
    history_tokens: int = 0  # ids[:history_tokens] is the conversation before the generation prompt
    opens_reasoning: bool = False  # the generation prompt leaves a <think> open
    images: Any = None  # vision.prompt.ImagePrompt when the messages hold images

    @property
    def keep_at(self) -> tuple[int, ...]:
        return (self.history_tokens,) if 0 < self.history_tokens < len(self.ids) else ()


def checked_text(text: str) -> str:
    try:
        # Lone surrogates come from invalid UTF-8 on a command line or from JS strings: refuse
        # them rather than guess what was meant.
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise GenerationInputError(
            "the prompt is not valid Unicode text (invalid UTF-8 or a lone surrogate)"
        ) from None
    return text


def plain_prompt(tokenizer: Any, text: Any) -> Prompt:
    if not isinstance(text, str) or text == "":
        raise GenerationInputError("the prompt is empty")
    return Prompt(tokenizer.encode(checked_text(text)))


def leaves_reasoning_open(generation_prompt: str) -> bool:
    return generation_prompt.rfind(THINK_OPEN) > generation_prompt.rfind(THINK_CLOSE)


def chat_prompt(
    tokenizer: Any,
    template: str,
    messages: list[Message],
    enable_thinking: bool | None = None,
    expand: Callable[[str], str] = lambda text: text,
    tools: list[dict[str, Any]] | None = None,
) -> Prompt:
    """`messages` rendered with the bundle's template and a generation prompt, then tokenised.
    `expand` rewrites the rendered text before tokenising (images: one pad per image token).
    `tools` (OpenAI function schemas) reach the template as `tools`, as transformers passes them."""
    if not any(
        str(m.get("content", "")).strip() or m.get("tool_calls") for m in messages if isinstance(m, dict)
    ):
        raise GenerationInputError("the prompt is empty")
    options: dict[str, Any] = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
    if tools:
        options["tools"] = tools
    text = checked_text(render_chat(template, messages, add_generation_prompt=True, **options))
    ids = tokenizer.encode(expand(text))
    history = render_chat(template, messages, add_generation_prompt=False, **options)
    if not text.startswith(history) or history == text:
        return Prompt(ids, 0, leaves_reasoning_open(text))
    history_ids = tokenizer.encode(expand(checked_text(history)))
    aligned = ids[: len(history_ids)] == history_ids
    return Prompt(ids, len(history_ids) if aligned else 0, leaves_reasoning_open(text[len(history) :]))
