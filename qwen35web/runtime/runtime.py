"""A loaded bundle ready to generate: manifest, tokenizer, engine, runner, generator.

The same class serves the CLI (native engine) and the page (web engine); only the opening
differs (`open_native` here, the web module's loader in the browser).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qwen35web.runtime.bundle_format import MANIFEST, MODEL_FILE, TOKENIZER_FILE, Manifest
from qwen35web.runtime.chat import Message
from qwen35web.runtime.engine import MODEL_ROLE, SAMPLER_ROLE, Engine
from qwen35web.runtime.errors import BundleError, GenerationInputError
from qwen35web.runtime.generation import CancelToken, GenerationResult, Generator
from qwen35web.runtime.manifest import load_local_manifest
from qwen35web.runtime.prefix_cache import DEFAULT_BUDGET_BYTES, PrefixCache
from qwen35web.runtime.prompt import Prompt, chat_prompt, plain_prompt
from qwen35web.runtime.runner import ModelRunner
from qwen35web.runtime.sampling import SamplingParams
from qwen35web.runtime.shared_tensors import SharingEngine


class Runtime:
    def __init__(
        self,
        manifest: Manifest,
        tokenizer: Any,
        engine: Engine,
        prefill_chunk: int = 256,
        max_context: int | None = None,
        snapshot_budget: int = DEFAULT_BUDGET_BYTES,
        manifest_sha256: str = "",
    ):
        self.manifest = manifest
        self.manifest_sha256 = manifest_sha256  # the bundle's identity in saved conversations
        self.tokenizer = tokenizer
        self.engine = engine
        # The runner and the kept snapshots may hold the same tensors: frees wait for the last holder.
        self.runner = ModelRunner(SharingEngine(engine), manifest)
        self.cache = PrefixCache(self.runner, manifest, snapshot_budget) if snapshot_budget > 0 else None
        context = min(max_context or manifest.max_positions, manifest.max_positions)
        self.generator = Generator(
            self.runner, tokenizer, manifest.eos_token_ids, context, prefill_chunk, self.cache
        )

    @property
    def max_context(self) -> int:
        return self.generator.max_context

    def prompt(
        self,
        prompt: str | None = None,
        chat: bool = False,
        messages: list[Message] | None = None,
        enable_thinking: bool | None = None,
    ) -> Prompt:
        """A plain prompt, or a conversation rendered with the bundle's template."""
        if not (chat or messages is not None):
            return plain_prompt(self.tokenizer, prompt)
        if self.manifest.chat_template is None:
            raise GenerationInputError("this bundle has no chat template")
        if messages is None:
            messages = [{"role": "user", "content": prompt or ""}]
        return chat_prompt(self.tokenizer, self.manifest.chat_template, messages, enable_thinking)

    def prompt_ids(
        self, prompt: str | None = None, chat: bool = False, messages: list[Message] | None = None
    ) -> list[int]:
        """Token ids of a plain prompt, or of a conversation rendered with the bundle's template."""
        return self.prompt(prompt, chat, messages).ids

    async def generate(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        cancel: CancelToken | None = None,
        snapshot_at: Sequence[int] = (),
    ) -> GenerationResult:
        async for _ in self.generator.stream(prompt_ids, params, cancel, snapshot_at):
            pass
        return self.generator.result

    def stream(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        cancel: CancelToken | None = None,
        snapshot_at: Sequence[int] = (),
    ):
        return self.generator.stream(prompt_ids, params, cancel, snapshot_at)

    def held_tensors(self) -> int:
        """Distinct tensors the runner and the kept snapshots hold (leak checks compare with live)."""
        held = {id(t): t for t in self.runner.states}
        if self.runner.logits is not None:
            held[id(self.runner.logits)] = self.runner.logits
        if self.cache is not None:
            held.update({id(t): t for t in self.cache.held_tensors()})
        return len(held)

    async def logits(self, token_ids: list[int]) -> list[float]:
        """Last-position logits after `token_ids` from a fresh state (parity checks)."""
        self.generator.check_prompt(token_ids)
        self.runner.reset()
        await self.runner.forward(token_ids)
        return await self.runner.last_logits()

    async def close(self) -> None:
        if self.cache is not None:
            self.cache.clear()
        self.runner.close()
        await self.engine.close()


async def open_native(
    bundle_dir: Path,
    threads: int | None = None,
    verify_hashes: bool = True,
    prefill_chunk: int = 256,
    snapshot_budget: int = DEFAULT_BUDGET_BYTES,
    max_context: int | None = None,
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
    identity = hashlib.sha256((bundle_dir / MANIFEST).read_bytes()).hexdigest()
    return Runtime(
        manifest,
        tokenizer,
        engine,
        prefill_chunk=prefill_chunk,
        snapshot_budget=snapshot_budget,
        manifest_sha256=identity,
        max_context=max_context,
    )
