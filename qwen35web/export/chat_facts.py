"""What the export reads from the chat template and the tokenizer: where a turn ends, which ids stop
a reply, and whether the template reasons when nobody passes `enable_thinking`.

Published Qwen3.5 repositories name only `<|endoftext|>` as eos in config.json and ship no
generation_config.json, while every assistant turn of the template ends with `<|im_end|>` (the
tokenizer's eos_token). The bundle therefore stops at the union of config.json's eos ids,
generation_config.json's, the tokenizer's eos_token and the template's turn end, as a chat
pipeline built on transformers would have to pass them to `generate`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from qwen35web.export.errors import BadInputError
from qwen35web.runtime.bundle_format import TOKENIZER_CONFIG_FILE, TOKENIZER_FILE
from qwen35web.runtime.chat import render_chat
from qwen35web.runtime.errors import GenerationInputError
from qwen35web.runtime.prompt import leaves_reasoning_open

log = logging.getLogger(__name__)

# A reply no template rewrites (no whitespace to strip, no reasoning tags to split on).
_REPLY_MARKER = "QWEN35WEB_REPLY_MARKER"
_USER_ONLY = [{"role": "user", "content": "Hello"}]


def load_tokenizer(model_dir: Path) -> Any:
    """The checkpoint's tokenizer.json in the `tokenizers` library, or one line saying why not."""
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
    except Exception as err:  # tokenizers raises plain Exceptions for a malformed file
        raise BadInputError(f"{TOKENIZER_FILE} cannot be read: {err}") from None


def tokenizer_eos_id(model_dir: Path, tokenizer: Any) -> int | None:
    """The id of tokenizer_config.json's `eos_token` (a string or an AddedToken object), if any."""
    try:
        config = json.loads((model_dir / TOKENIZER_CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise BadInputError(f"{TOKENIZER_CONFIG_FILE} is not valid JSON: {err}") from None
    eos = config.get("eos_token") if isinstance(config, dict) else None
    if isinstance(eos, dict):
        eos = eos.get("content")
    if eos is None:
        return None
    token_id = tokenizer.token_to_id(eos) if isinstance(eos, str) else None
    if token_id is None:
        raise BadInputError(f"{TOKENIZER_CONFIG_FILE}: eos_token {eos!r} is not a token of {TOKENIZER_FILE}")
    return int(token_id)


def template_turn_end_id(template: str | None, tokenizer: Any) -> int | None:
    """The special token the template writes right after an assistant reply (Qwen: <|im_end|>).

    Found by rendering a one-exchange conversation whose reply is a marker and tokenising what the
    template put after the marker: its first token, when it is a special added token, ends a turn.
    """
    if template is None:
        return None
    messages = [*_USER_ONLY, {"role": "assistant", "content": _REPLY_MARKER}]
    try:
        text = render_chat(template, messages, add_generation_prompt=False)
    except GenerationInputError as err:
        log.warning("the chat template cannot render a reply (%s): no turn-end token from it", err)
        return None
    if _REPLY_MARKER not in text:
        return None
    after = text[text.rindex(_REPLY_MARKER) + len(_REPLY_MARKER) :]
    ids = tokenizer.encode(after, add_special_tokens=False).ids if after else []
    special = {i for i, token in tokenizer.get_added_tokens_decoder().items() if token.special}
    return int(ids[0]) if ids and ids[0] in special else None


def _generation_prompt(template: str, **extra: Any) -> str | None:
    """The template's generation prompt after one user message (None: the template cannot render it)."""
    try:
        return render_chat(template, _USER_ONLY, add_generation_prompt=True, **extra)
    except GenerationInputError as err:
        log.debug("the chat template cannot render a user message (%s)", err)
        return None


def starts_reasoning(template: str | None) -> bool:
    """Whether a reply starts in the reasoning when nobody passes `enable_thinking`: the template's
    generation prompt leaves reasoning open (also for a template that always reasons, with no switch:
    the mode whose sampling the model card recommends, card_sampling)."""
    default = _generation_prompt(template) if template is not None else None
    return default is not None and leaves_reasoning_open(default)


def thinking_default(template: str | None) -> bool | None:
    """The manifest's `thinking_default`: whether the template's generation prompt leaves reasoning
    open when `enable_thinking` is not passed; None when the switch changes nothing (no reasoning
    switch) or the template cannot render."""
    if template is None:
        return None
    switches: list[dict[str, Any]] = [{}, {"enable_thinking": True}, {"enable_thinking": False}]
    default, on, off = (_generation_prompt(template, **extra) for extra in switches)
    if default is None or on is None or off is None:
        log.warning("the chat template cannot render a user message: no thinking default recorded")
        return None
    if on == off:
        return None
    if default in (on, off):
        return default == on
    return leaves_reasoning_open(default)


def stop_token_ids(
    config_ids: tuple[int, ...],
    generation: dict[str, Any],
    model_dir: Path,
    template: str | None,
    vocab_size: int,
) -> tuple[int, ...]:
    """config eos ∪ generation_config eos ∪ the tokenizer's eos_token ∪ the template's turn end, in
    that order, each once. Ids outside the vocabulary are bad input; a generation_config.json whose
    eos list leaves out the tokenizer's eos is warned about (the bundle stops at both)."""
    tokenizer = load_tokenizer(model_dir)
    generation_ids = list(generation.get("eos_token_ids", []))
    outside = [i for i in generation_ids if i >= vocab_size]
    if outside:
        raise BadInputError(
            f"generation_config.json: eos_token_id {outside} outside the vocabulary (vocab_size {vocab_size})"
        )
    tokenizer_eos = tokenizer_eos_id(model_dir, tokenizer)
    if generation_ids and tokenizer_eos is not None and tokenizer_eos not in generation_ids:
        log.warning(
            "generation_config.json's eos_token_id %s does not include the tokenizer's eos_token (%d): "
            "the bundle stops at both",
            generation_ids,
            tokenizer_eos,
        )
    turn_end = template_turn_end_id(template, tokenizer)
    merged: list[int] = []
    for token_id in (*config_ids, *generation_ids, tokenizer_eos, turn_end):
        if token_id is not None and token_id not in merged:
            merged.append(token_id)
    return tuple(merged)
