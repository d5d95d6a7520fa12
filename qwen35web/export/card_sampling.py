"""The sampling defaults a bundle records: the checkpoint's, a user's file, or the model card's.

The published Qwen3.5 repositories ship no generation_config.json; their model cards ("Best
Practices") recommend sampling settings per mode instead. Read from the 0.8B card (CARD_URL); public
notes quote the 2B card's identically; the 4B and 9B cards were not checked here (text tasks; min_p 0.0
and repetition_penalty 1.0 are no-ops here):

    non-thinking: temperature 1.0, top_p 1.0,  top_k 20, presence_penalty 2.0
    thinking:     temperature 1.0, top_p 0.95, top_k 20, presence_penalty 1.5

(the cards' VL and precise-coding variants: non-thinking VL 0.7 / 0.8 / 20 / 1.5; thinking VL or
precise coding 0.6 / 0.95 / 20 / 0.0). A checkpoint that recommends no sampling — no
generation_config.json, or one with eos ids only, as `save_pretrained` writes for a fine-tune — and
uses Qwen3.5's published vocabulary gets the values of the mode its chat template starts in, and the
manifest's `generation.source` says where they come from. A stand-in checkpoint with another
vocabulary (this project's test models) is not a Qwen3.5 model the card speaks for: it gets none.
`qwen35web export --generation-config FILE` replaces all of this with the user's file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from qwen35web.export.chat_facts import starts_reasoning
from qwen35web.export.generation_config import GENERATION_CONFIG, read_generation_config

log = logging.getLogger(__name__)

CARD_URL = "https://huggingface.co/Qwen/Qwen3.5-0.8B"  # section "Best Practices"
QWEN35_VOCAB_SIZE = 248_320  # the published models' (padded) vocabulary: the card applies
CARD_SAMPLING: dict[str, dict[str, Any]] = {
    "non-thinking": {
        "do_sample": True,
        "temperature": 1.0,
        "top_p": 1.0,
        "top_k": 20,
        "presence_penalty": 2.0,
    },
    "thinking": {"do_sample": True, "temperature": 1.0, "top_p": 0.95, "top_k": 20, "presence_penalty": 1.5},
}
SAMPLING_KEYS = ("do_sample", "temperature", "top_p", "top_k", "repetition_penalty", "presence_penalty")


def card_source(mode: str) -> str:
    return f"model card: Qwen3.5 Best Practices, {mode} mode for text tasks ({CARD_URL})"


def generation_section(
    model_dir: Path, vocab_size: int, template: str | None, user_file: Path | None = None
) -> dict[str, Any]:
    """The manifest's `generation` section: eos ids and sampling defaults, with their `source`."""
    section = read_generation_config(model_dir, user_file)
    if user_file is not None:
        return {**section, "source": f"--generation-config {user_file.name}"}
    if set(SAMPLING_KEYS) & set(section):
        return {**section, "source": GENERATION_CONFIG}
    if vocab_size != QWEN35_VOCAB_SIZE:
        return section
    mode = "thinking" if starts_reasoning(template) else "non-thinking"
    log.info("no %s: recording the model card's sampling for %s mode", GENERATION_CONFIG, mode)
    return {**section, **CARD_SAMPLING[mode], "source": card_source(mode)}
