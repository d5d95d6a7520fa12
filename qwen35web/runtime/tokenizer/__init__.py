"""Pure-Python (standard library only) tokenizer matching Hugging Face `tokenizers` for byte-level BPE."""

from qwen35web.runtime.tokenizer.stream import StreamDecoder
from qwen35web.runtime.tokenizer.tokenizer import Tokenizer

__all__ = ["StreamDecoder", "Tokenizer"]
