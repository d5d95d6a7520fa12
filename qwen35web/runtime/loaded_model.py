"""A loaded bundle ready to generate: manifest, tokenizer, engine, runner, generator.

The same class serves the CLI (native engine) and the page (web engine); only the opening
differs (`native/open_bundle.open_native`, the page's `browser/session.open_session`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from qwen35web.runtime.bundle_format import Manifest
from qwen35web.runtime.chat import Message
from qwen35web.runtime.engine import Engine
from qwen35web.runtime.errors import GenerationInputError
from qwen35web.runtime.generation import CancelToken, GenerationResult, Generator, TokenConstraint
from qwen35web.runtime.prefill_ahead import PrefillAhead
from qwen35web.runtime.prefix_cache import DEFAULT_BUDGET_BYTES, PrefixCache
from qwen35web.runtime.prompt import Prompt, chat_prompt, plain_prompt
from qwen35web.runtime.runner import ModelRunner
from qwen35web.runtime.sampling import SamplingParams
from qwen35web.runtime.shared_tensors import SharingEngine
from qwen35web.runtime.vision.errors import ImageInputError
from qwen35web.runtime.vision.images import ImageStore
from qwen35web.runtime.vision.processor_config import ImageProcessorSpec, smart_resize
from qwen35web.runtime.vision.prompt import expand_image_pads, image_ids_in, image_prompt
from qwen35web.runtime.vision.resized import ResizedImage

# (source, spec) -> the image at the model's size: how a runtime turns a file or bytes into pixels.
ImageDecoder = Callable[[Any, ImageProcessorSpec], ResizedImage]


class Runtime:
    def __init__(
        self,
        manifest: Manifest,
        tokenizer: Any,
        engine: Engine,
        prefill_chunk: int = 256,
        max_context: int | None = None,
        kept_states_budget: int = DEFAULT_BUDGET_BYTES,
        manifest_sha256: str = "",
        image_decoder: ImageDecoder | None = None,
        max_image_tokens: int | None = None,
        max_prompt_image_tokens: int | None = None,
    ):
        """`max_image_tokens` / `max_prompt_image_tokens` override the bundle's image-token caps for
        this backend (vision/limits.py); None keeps them."""
        self.manifest = manifest
        # Natively, Pillow (native/image_decode.py); in the page the browser decodes, so there is none.
        self.image_decoder = image_decoder
        self.manifest_sha256 = manifest_sha256  # the bundle's identity in saved conversations
        vision = manifest.vision
        self.images = (
            ImageStore(engine, vision, manifest.model.hidden_size, max_image_tokens, max_prompt_image_tokens)
            if vision is not None
            else None
        )
        self.tokenizer = tokenizer
        self.engine = engine
        # The runner and the kept states may hold the same tensors: frees wait for the last holder.
        self.runner = ModelRunner(SharingEngine(engine), manifest)
        budget = kept_states_budget
        self.cache = PrefixCache(self.runner, manifest, budget) if budget > 0 else None
        context = min(max_context or manifest.max_positions, manifest.max_positions)
        self.generator = Generator(
            self.runner, tokenizer, manifest.eos_token_ids, context, prefill_chunk, self.cache
        )
        # Background prefill of what the next turn will start with; every runner use holds it off.
        self.ahead = PrefillAhead(self)

    @property
    def max_context(self) -> int:
        return self.generator.max_context

    def prompt(
        self,
        prompt: str | None = None,
        chat: bool = False,
        messages: list[Message] | None = None,
        enable_thinking: bool | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> Prompt:
        """A plain prompt, or a conversation rendered with the bundle's template (with `tools`,
        OpenAI function schemas, when given)."""
        if not (chat or messages is not None):
            return plain_prompt(self.tokenizer, prompt)
        if self.manifest.chat_template is None:
            raise GenerationInputError("this bundle has no chat template")
        if messages is None:
            messages = [{"role": "user", "content": prompt or ""}]
        image_ids = image_ids_in(messages)
        if not image_ids:
            return chat_prompt(
                self.tokenizer, self.manifest.chat_template, messages, enable_thinking, tools=tools
            )
        images = [self.image_store().get(i) for i in image_ids]
        self.image_store().check_prompt(images)
        expand = partial(expand_image_pads, images=images)
        template = self.manifest.chat_template
        rendered = chat_prompt(self.tokenizer, template, messages, enable_thinking, expand, tools)
        return replace(rendered, images=image_prompt(rendered.ids, self.image_store(), images))

    def image_store(self) -> ImageStore:
        if self.images is None:
            raise GenerationInputError(
                "this bundle has no vision graph (exported text-only): it cannot take images"
            )
        return self.images

    def image_target_size(self, height: int, width: int) -> tuple[int, int]:
        """The size an image of height x width is resized to before it is added (ImageInputError if
        it cannot be: no pixels, too elongated)."""
        return smart_resize(height, width, self.image_store().spec)

    def add_image_rgb(self, height: int, width: int, rgb: bytes) -> str:
        """Register an RGB image already at its target size; returns the id messages name it by."""
        return self.image_store().add(ResizedImage(height, width, bytes(rgb))).image_id

    def add_image(self, source: Any) -> str:
        """Register an image file, bytes or PIL image (natively: Pillow decodes and resizes it)."""
        if self.image_decoder is None:
            raise ImageInputError("this runtime takes decoded images only (add_image_rgb)")
        return self.image_store().add(self.image_decoder(source, self.image_store().spec)).image_id

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
        keep_at: Sequence[int] = (),
    ) -> GenerationResult:
        async for _ in self.stream(prompt_ids, params, cancel, keep_at):
            pass
        return self.generator.result

    async def stream(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        cancel: CancelToken | None = None,
        keep_at: Sequence[int] = (),
        images: Any = None,
        constraint: TokenConstraint | None = None,
        top_logprobs: int | None = None,
    ) -> AsyncIterator[str]:
        """The generator's stream (see Generator.stream; `generator.result` afterwards), once background
        prefill has stopped (within one chunk); the result's first_token_ms counts that wait too."""
        waiting = time.perf_counter()
        async with self.ahead.hold():
            waited_ms = (time.perf_counter() - waiting) * 1000
            self.ahead.stats.last_wait_ms = waited_ms
            stream = self.generator.stream(
                prompt_ids,
                params,
                cancel,
                keep_at,
                images,
                constraint=constraint,
                top_logprobs=top_logprobs,
            )
            async for text in stream:
                yield text
            self.generator.result.first_token_ms += waited_ms

    def held_tensors(self) -> int:
        """Distinct tensors the runner and the kept states hold (leak checks compare with live)."""
        held = {id(t): t for t in self.runner.states}
        if self.runner.logits is not None:
            held[id(self.runner.logits)] = self.runner.logits
        if self.cache is not None:
            held.update({id(t): t for t in self.cache.held_tensors()})
        return len(held)

    async def logits(self, token_ids: list[int]) -> list[float]:
        """Last-position logits after `token_ids` from a fresh state (parity checks)."""
        self.generator.check_prompt(token_ids)
        async with self.ahead.hold(keep_target=True):
            self.runner.reset()
            await self.runner.forward(token_ids)
            return await self.runner.last_logits()

    async def close(self) -> None:
        async with self.ahead.hold():
            pass
        if self.cache is not None:
            self.cache.clear()
        self.runner.close()
        await self.engine.close()
