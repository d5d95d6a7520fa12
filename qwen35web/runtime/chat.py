"""Chat templates: the bundle's Jinja template, rendered the way transformers renders it.

jinja2 is pure Python, so the same code runs in Pyodide (the web build vendors it).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from qwen35web.runtime.errors import GenerationInputError

Message = dict[str, Any]


def _raise(message: str) -> None:
    raise GenerationInputError(f"chat template: {message}")


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _environment():
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


def render_chat(
    template: str, messages: list[Message], add_generation_prompt: bool = True, **extra: Any
) -> str:
    """The prompt text for `messages` (special tokens appear as text; the tokenizer maps them)."""
    from jinja2 import TemplateError

    if not messages:
        raise GenerationInputError("chat needs at least one message")
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise GenerationInputError("each chat message needs a 'role' and a 'content'")
    try:
        compiled = _environment().from_string(template)
        return compiled.render(messages=messages, add_generation_prompt=add_generation_prompt, **extra)
    except TemplateError as err:
        raise GenerationInputError(f"chat template failed: {err}") from None
