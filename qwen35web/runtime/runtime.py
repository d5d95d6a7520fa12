"""A loaded bundle ready to generate: manifest, tokenizer, engine, runner, generator.

The same class serves the CLI (native engine) and the page (web engine); only the opening
differs (`open_native` here, the web module's loader in the browser).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qwen35web.runtime.bundle_format import MODEL_FILE, TOKENIZER_FILE, Manifest
from qwen35web.runtime.chat import Message, render_chat
from qwen35web.runtime.engine import MODEL_ROLE, SAMPLER_ROLE, Engine
from qwen35web.runtime.errors import BundleError, GenerationInputError
from qwen35web.runtime.generation import CancelToken, GenerationResult, Generator
from qwen35web.runtime.manifest import load_local_manifest
from qwen35web.runtime.runner import ModelRunner
from qwen35web.runtime.sampling import SamplingParams


class Runtime:
    def __init__(
        self,
        manifest: Manifest,
        tokenizer: Any,
        engine: Engine,
        prefill_chunk: int = 256,
        max_context: int | None = None,
    ):
        self.manifest = manifest
        self.tokenizer = tokenizer
        self.engine = engine
        self.runner = ModelRunner(engine, manifest)
        context = min(max_context or manifest.max_positions, manifest.max_positions)
        self.generator = Generator(self.runner, tokenizer, manifest.eos_token_ids, context, prefill_chunk)

    def prompt_ids(
        self, prompt: str | None = None, chat: bool = False, messages: list[Message] | None = None
    ) -> list[int]:
        """Token ids of a plain prompt, or of a conversation rendered with the bundle's template."""
        if chat or messages is not None:
            if self.manifest.chat_template is None:
                raise GenerationInputError("this bundle has no chat template")
            if messages is None:
                messages = [{"role": "user", "content": prompt or ""}]
            if not any(str(m.get("content", "")).strip() for m in messages):
                raise GenerationInputError("the prompt is empty")
            text = render_chat(self.manifest.chat_template, messages, add_generation_prompt=True)
        else:
            if not isinstance(prompt, str) or prompt == "":
                raise GenerationInputError("the prompt is empty")
            text = prompt
        try:
            # Lone surrogates come from invalid UTF-8 on a command line or from JS strings: refuse
            # them rather than guess what was meant.
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise GenerationInputError(
                "the prompt is not valid Unicode text (invalid UTF-8 or a lone surrogate)"
            ) from None
        return self.tokenizer.encode(text)

    async def generate(
        self, prompt_ids: list[int], params: SamplingParams, cancel: CancelToken | None = None
    ) -> GenerationResult:
        return await self.generator.generate(prompt_ids, params, cancel)

    def stream(self, prompt_ids: list[int], params: SamplingParams, cancel: CancelToken | None = None):
        return self.generator.stream(prompt_ids, params, cancel)

    async def logits(self, token_ids: list[int]) -> list[float]:
        """Last-position logits after `token_ids` from a fresh state (parity checks)."""
        self.generator.check_prompt(token_ids)
        self.runner.reset()
        await self.runner.forward(token_ids)
        return await self.runner.last_logits()

    async def close(self) -> None:
        self.runner.close()
        await self.engine.close()


async def open_native(
    bundle_dir: Path, threads: int | None = None, verify_hashes: bool = True, prefill_chunk: int = 256
) -> Runtime:
    from qwen35web.runtime.engine_native import NativeEngine
    from qwen35web.runtime.tokenizer import Tokenizer

    manifest = load_local_manifest(bundle_dir, verify_hashes=verify_hashes)
    try:
        tokenizer = Tokenizer.from_file(bundle_dir / TOKENIZER_FILE)
    except ValueError as err:
        raise BundleError(f"{TOKENIZER_FILE}: {err}") from None
    engine = NativeEngine(threads)
    await engine.open(MODEL_ROLE, str(bundle_dir / MODEL_FILE))
    await engine.open(SAMPLER_ROLE, str(bundle_dir / manifest.sampler.file))
    return Runtime(manifest, tokenizer, engine, prefill_chunk=prefill_chunk)
