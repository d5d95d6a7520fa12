"""Pure-Python (standard library only) tokenizer matching Hugging Face `tokenizers` for byte-level BPE."""

from runtime_py.tokenizer.stream import StreamDecoder
from runtime_py.tokenizer.tokenizer import Tokenizer

__all__ = ["StreamDecoder", "Tokenizer"]
