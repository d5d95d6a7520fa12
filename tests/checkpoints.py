"""Test checkpoints: the seeded random models of devtools.random_checkpoint."""

from devtools.byte_tokenizer import CHAT_TEMPLATE, write_tokenizer
from devtools.random_checkpoint import (
    TINY_TEXT_CONFIG,
    TINY_VISION_CONFIG,
    preprocessor_config,
    random_model,
    random_vision_model,
    write_text_checkpoint,
    write_vl_checkpoint,
)

__all__ = [
    "CHAT_TEMPLATE",
    "TINY_TEXT_CONFIG",
    "TINY_VISION_CONFIG",
    "preprocessor_config",
    "random_model",
    "random_vision_model",
    "write_text_checkpoint",
    "write_tokenizer",
    "write_vl_checkpoint",
]
