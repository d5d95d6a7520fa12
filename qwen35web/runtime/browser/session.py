"""The page's way into the runtime: what web/static/worker/worker.js calls through Pyodide.

Standard library only. The engine and the worker's file store arrive as arguments (JS objects
behind Pyodide proxies), and every call takes and returns JSON text, so the FFI boundary carries
only strings, numbers and one streaming callback. Failures come back as `{"error": message, "code": code}`
with a sentence meant for the page, never as a Python traceback.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from qwen35web.runtime import prefill_ahead, saved_conversation
from qwen35web.runtime.browser import images as web_images
from qwen35web.runtime.browser.completions import api_error_json, run_chat_completion
from qwen35web.runtime.browser.js_bytes import JsBytes
from qwen35web.runtime.bundle_format import MODEL_FILE, TOKENIZER_FILE, Manifest
from qwen35web.runtime.conversation_file import DIGEST_BYTES, decode, encode
from qwen35web.runtime.engine import MODEL_ROLE, SAMPLER_ROLE, Engine
from qwen35web.runtime.errors import BundleError, GenerationInputError, RuntimeUserError, error_code
from qwen35web.runtime.generation import DEFAULT_PREFILL_CHUNK, CancelToken
from qwen35web.runtime.generation_defaults import bundle_sampling_defaults, with_bundle_defaults
from qwen35web.runtime.loaded_model import Runtime
from qwen35web.runtime.manifest import parse_manifest_text
from qwen35web.runtime.openai_api.errors import ApiError
from qwen35web.runtime.sampling import SamplingParams
from qwen35web.runtime.tools import check_tools
from qwen35web.runtime.turn import Turn, TurnOptions, TurnResult
from qwen35web.runtime.vision.images import PATCHIFY_ROLE, VISION_ROLE

logger = logging.getLogger(__name__)

OnText = Callable[[str, str], Any]  # (text, kind): the page hears the reply as it streams

# Request fields of generate() (the page's camelCase) -> SamplingParams fields.
_SAMPLING_FIELDS = {
    "greedy": "greedy",
    "temperature": "temperature",
    "topK": "top_k",
    "topP": "top_p",
    "repetitionPenalty": "repetition_penalty",
    "presencePenalty": "presence_penalty",
    "frequencyPenalty": "frequency_penalty",
    "reasoningBudget": "reasoning_budget",
    "reasoningNudge": "reasoning_nudge",
    "seed": "seed",
    "maxNewTokens": "max_new_tokens",
    "minNewTokens": "min_new_tokens",
}


def _page_defaults(generation: dict[str, Any]) -> dict[str, Any]:
    """The bundle's sampling defaults under the page's names (the form starts from them)."""
    page_names = {field: key for key, field in _SAMPLING_FIELDS.items()}
    return {page_names[f]: v for f, v in bundle_sampling_defaults(generation).items() if f in page_names}


class FileStore(Protocol):
    """The worker's verified bundle files (downloaded and checked against the manifest's sha256)."""

    def text(self, path: str) -> str: ...


def external_data_files(manifest: Manifest) -> list[str]:
    """The model graph's external-data files, as the manifest lists them."""
    return list(manifest.external_data)


def _plan_paths(manifest: Manifest) -> dict[str, list[str]]:
    """Each file the page loads -> the external-data files of it (graphs only), in load order: the
    decoder and its data, the sampler, the tokenizer, then a VL bundle's vision and patchify graphs."""
    external = external_data_files(manifest)
    paths: dict[str, list[str]] = {MODEL_FILE: external, **{path: [] for path in external}}
    paths.update({manifest.sampler.file: [], TOKENIZER_FILE: []})
    vision = manifest.vision
    if vision is not None:
        paths[vision.file] = list(vision.data_files)
        paths.update({path: [] for path in vision.data_files})
        paths[vision.patchify_file] = []
    return paths


def download_plan(manifest_text: str) -> str:
    """JSON list of the files the page fetches to run the bundle: path, size, sha256, externalData."""
    try:
        manifest = parse_manifest_text(manifest_text)
    except RuntimeUserError as err:
        return _error(err)
    plan = []
    for path, external in _plan_paths(manifest).items():
        entry = manifest.files[path]
        plan.append({"path": path, "size": entry.size, "sha256": entry.sha256, "externalData": external})
    return json.dumps({"files": plan})


def _sha256_text(text: str | bytes) -> str:
    """The bundle's identity: sha256 of manifest.json's bytes (the page passes the text it fetched)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def _error(err: BaseException) -> str:
    if isinstance(err, RuntimeUserError):
        message = str(err)
    else:  # a bug or an engine failure: keep the details in the console, show one line
        logger.exception("unexpected failure in the runtime")
        message = f"{type(err).__name__}: {err}"
    # code: the page's error class (errors.mjs), carried by the error's own class; errorType names it.
    return json.dumps({"error": message, "code": error_code(err), "errorType": type(err).__name__})


def _sampling_params(request: dict[str, Any], generation: dict[str, Any]) -> SamplingParams:
    """The request's settings (a missing or null field is not given) over the bundle's defaults."""
    given = {field: request.get(key) for key, field in _SAMPLING_FIELDS.items()}
    values = with_bundle_defaults(given, generation)
    stop = request.get("stop") or []
    if not isinstance(stop, list):
        raise GenerationInputError("stop must be a list of strings")
    return SamplingParams(**values, stop_strings=tuple(stop))


def _messages(messages_json: str) -> list[Any]:
    messages = json.loads(messages_json)
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise GenerationInputError("messages must be a list of {role, content} objects")
    return messages


def _camel(fields: dict[str, Any]) -> dict[str, Any]:
    """snake_case keys as the page names them (target_tokens -> targetTokens)."""
    return {k.split("_")[0] + "".join(w.title() for w in k.split("_")[1:]): v for k, v in fields.items()}


def _parse_request(request_json: str) -> dict[str, Any]:
    try:
        request = json.loads(request_json)
    except ValueError:
        raise GenerationInputError("the request is not valid JSON") from None
    if not isinstance(request, dict):
        raise GenerationInputError("the request must be an object")
    return request


def _flag(request: dict[str, Any], key: str, default: bool) -> bool:
    value = request.get(key, default)
    if not isinstance(value, bool):
        raise GenerationInputError(f"{key} must be true or false")
    return value


def _request_prompt(request: dict[str, Any]) -> tuple[list[Any] | None, str | None, bool | None]:
    """The request's messages, prompt and enableThinking, checked (each may be missing)."""
    messages = request.get("messages")
    if messages is not None and not isinstance(messages, list):
        raise GenerationInputError("messages must be a list of {role, content} objects")
    prompt = request.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise GenerationInputError("the prompt must be text")
    thinking = request.get("enableThinking")
    if thinking is not None and not isinstance(thinking, bool):
        raise GenerationInputError("enableThinking must be true or false")
    return messages, prompt, thinking


class WebSession:
    """One loaded bundle in the page: generate (streaming), stop, logits, tokenize."""

    def __init__(self, runtime: Runtime, model_name: str):
        self.runtime = runtime
        self.model_name = model_name
        self._cancel: CancelToken | None = None
        self._vision = web_images.watch_vision(runtime)  # reports the vision graphs' runs

    def describe(self) -> str:
        manifest = self.runtime.manifest
        facts = manifest.model
        weight_bytes = sum(manifest.files[p].size for p in (MODEL_FILE, *manifest.external_data))
        vision = manifest.vision
        vision_bytes = sum(manifest.files[p].size for p in vision.files()) if vision is not None else 0
        return json.dumps(
            {
                "model": self.model_name,
                "backend": self.runtime.engine.name,
                "dtype": manifest.dtype,
                "ops": manifest.ops,
                "vocabSize": manifest.vocab_size,
                "layers": facts.num_layers,
                "hiddenSize": facts.hidden_size,
                "weightBytes": weight_bytes,
                "visionWeightBytes": vision_bytes,
                "chat": manifest.chat_template is not None,
                "thinkingDefault": manifest.thinking_default,
                "contextTokens": self.runtime.max_context,
                "vision": web_images.vision_facts(self.runtime),
                "generation": _page_defaults(manifest.generation),
                # Where those defaults come from (generation_config.json, the model card, ...), if any.
                "generationSource": manifest.generation.get("source"),
                # Samplers exported before presence/frequency penalties cannot apply them.
                "penalties": self.runtime.runner.sampler_takes_biases,
            }
        )

    def image_target_size(self, height: Any, width: Any) -> str:
        """JSON {height, width}: the size the page resizes a decoded image to, or why it cannot."""
        try:
            return json.dumps(web_images.target_size(self.runtime, height, width))
        except Exception as err:
            return _error(err)

    def add_image(self, height: Any, width: Any, rgb: Any) -> str:
        """Register resized RGB bytes (a Uint8Array [height, width, 3]): JSON {imageId, tokens}."""
        try:
            return json.dumps(web_images.add_rgb(self.runtime, height, width, rgb))
        except Exception as err:
            return _error(err)

    async def generate(
        self, request_json: str, on_text: Callable[..., Any], on_progress: Callable[..., Any] | None = None
    ) -> str:
        """Generate for the request; `on_text(text, kind)` receives the text as it streams. A chat
        request is one `turn.Turn`, as natively: its reply is split into reasoning and answer
        (`kind` "reasoning" or "text"); a plain prompt is continued as it is (`kind` "text").
        `on_progress(json)` hears when the vision graph starts and ends each image it encodes."""
        cancel = self._cancel = CancelToken()
        if self._vision is not None:
            self._vision.watch((lambda event: on_progress(json.dumps(event))) if on_progress else None)
        try:
            request = _parse_request(request_json)
            params = _sampling_params(request, self.runtime.manifest.generation)
            if request.get("chat"):
                result, last_logits = await self._turn(request, params, cancel, on_text)
            else:
                result, last_logits = await self._continue(request, params, cancel, on_text)
        except Exception as err:  # the page shows one sentence; see _error
            return _error(err)
        finally:
            self._cancel = None
            if self._vision is not None:
                self._vision.watch(None)
        return json.dumps(self._stats(result) | ({"lastLogits": last_logits} if last_logits else {}))

    async def _turn(
        self, request: dict[str, Any], params: SamplingParams, cancel: CancelToken, on_text: OnText
    ) -> tuple[TurnResult, list[float] | None]:
        """One chat turn over the request's messages (or `prompt` as a one-message chat). A chat is
        never cut silently: refused when full, or its oldest turns dropped when asked (`dropOldest`;
        the stats say how many, the page says so)."""
        messages, prompt, thinking = _request_prompt(request)
        if messages is None:
            messages = [{"role": "user", "content": prompt or ""}]
        options = TurnOptions(
            enable_thinking=thinking,
            drop_oldest=_flag(request, "dropOldest", False),
            prefill_ahead=bool(request.get("prefillAhead", True)),
            last_logits=bool(request.get("returnLogits")),  # parity checks (the module's returnLogits)
        )
        turn = Turn(self.runtime, messages, params, options, cancel)
        async for piece in turn.pieces():
            on_text(piece.text, piece.kind)
        assert turn.result is not None
        return turn.result, turn.last_logits

    async def _continue(
        self, request: dict[str, Any], params: SamplingParams, cancel: CancelToken, on_text: OnText
    ) -> tuple[TurnResult, list[float] | None]:
        """A plain prompt continued as it is, as `qwen35web generate` does (no chat template)."""
        started = time.perf_counter()
        messages, prompt, thinking = _request_prompt(request)
        _flag(request, "dropOldest", False)
        rendered = self.runtime.prompt(prompt, messages=messages, enable_thinking=thinking)
        render_ms = (time.perf_counter() - started) * 1000  # rendering and tokenising
        ids, at, images = rendered.ids, rendered.keep_at, rendered.images
        async for text in self.runtime.stream(ids, params, cancel, at, images=images):
            on_text(text, "text")
        generated = self.runtime.generator.result
        result = TurnResult.of(generated, generated.text, "", self.runtime.max_context)
        result.first_token_ms += render_ms  # from the call, as natively
        result.render_ms = render_ms
        last_logits = await self.runtime.runner.last_logits() if request.get("returnLogits") else None
        return result, last_logits

    def _stats(self, result: TurnResult) -> dict[str, Any]:
        return {
            "tokens": result.tokens,
            "text": result.text,
            "reasoning": result.reasoning,
            "contextTokens": result.context_tokens,
            # From the call, as natively: rendering and tokenising the conversation included.
            "firstTokenMs": result.first_token_ms,
            # Its parts besides prefillMs (the rest is the first sampler run): rendering and
            # tokenising, and the wait for the background chunk in flight.
            "renderMs": result.render_ms,
            "waitedMs": self.runtime.ahead.stats.last_wait_ms,
            "droppedMessages": result.dropped_messages,
            "droppedTurns": result.dropped_turns,
            "backend": self.runtime.engine.name,
            "model": self.model_name,
            "promptTokens": result.prompt_tokens,
            "reusedTokens": result.reused_tokens,
            "prefilledTokens": result.prefilled_tokens,
            "stopReason": result.stop_reason,
            "prefillMs": result.prefill_ms,
            "decodeMs": result.decode_ms,
            "decodeTokensPerSecond": result.decode_tokens_per_s,
            "pythonShare": result.python_share,
            "imagesEncoded": result.images_encoded,
            "reasoningCut": result.reasoning_cut,
        }

    async def chat_completion(
        self, request_json: str, on_chunk: Callable[..., Any], image_ids_json: str | None = None
    ) -> str:
        """An OpenAI chat-completions request (the module's `chat.completions.create`): JSON
        `{"response": chat.completion, "stopReason"}`, or, with `stream: true`, each
        `chat.completion.chunk` as JSON through `on_chunk(json)` and then `{"response": null,
        "streamed": n, "stopReason"}`. `image_ids_json`: the ids of the
        request's image parts, decoded and added by the worker (see browser/completions.py). A refused
        request answers the error JSON with OpenAI's error object under "openai"."""
        cancel = self._cancel = CancelToken()
        try:
            return await run_chat_completion(
                self.runtime, self.model_name, request_json, on_chunk, cancel, image_ids_json
            )
        except ApiError as err:
            return api_error_json(err)
        except Exception as err:
            return _error(err)
        finally:
            self._cancel = None

    async def save_conversation(self, messages_json: str, tools_json: str | None = None) -> bytes | str:
        """The conversation with the state its next turn resumes from, as saved_conversation's bytes
        (the error JSON, a str, when it cannot be saved). `tools_json`: the tools its turns were
        rendered with (OpenAI function schemas; they are part of the prompt the state holds)."""
        try:
            tools = check_tools(json.loads(tools_json)) if tools_json else None
            async with self.runtime.ahead.hold(keep_target=True):  # the background goes on after
                captured = await saved_conversation.capture(self.runtime, _messages(messages_json), tools)
                return encode(captured)
        except Exception as err:
            return _error(err)

    async def restore_conversation(self, blob: Any) -> str:
        """Load a saved conversation's state (bytes, or a JS Uint8Array); JSON {messages, tokens}.
        A blob of another bundle, truncated or corrupted restores nothing and says why."""
        try:
            # A JS array is read in place: only the header is copied into Python (see JsBytes).
            if hasattr(blob, "subarray"):
                data: bytes | JsBytes = JsBytes(blob)
            else:
                data = blob.to_bytes() if hasattr(blob, "to_bytes") else bytes(blob)
            body = data[: len(data) - DIGEST_BYTES] if len(data) > DIGEST_BYTES else None
            digest = await body.sha256() if isinstance(body, JsBytes) else None
            async with self.runtime.ahead.hold():  # another conversation: background work stops
                saved = decode(data, digest)
                messages = saved_conversation.restore(self.runtime, saved)
            restored = {"messages": messages, "tools": saved.tools or [], "tokens": len(saved.token_ids)}
            return json.dumps(restored)
        except Exception as err:
            return _error(err)

    async def prepare(self, request_json: str) -> str:
        """Prefill in the background what the next turn will start with: JSON {targetTokens}. The
        request's `messages` end with the message being typed (a draft: its stable part is
        prefilled) or with the last reply (the next user turn's opening). Any later call stops the
        work within one chunk; the results of turns never depend on it."""
        try:
            request = _parse_request(request_json)
            messages = request.get("messages")
            if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
                raise GenerationInputError("messages must be a list of {role, content} objects")
            history, draft = prefill_ahead.split_draft(messages)
            target = prefill_ahead.prepare(self.runtime, history, draft, request.get("enableThinking"))
            return json.dumps({"targetTokens": target})
        except Exception as err:
            return _error(err)

    def cancel(self) -> bool:
        """Stop the running generation before its next token; False when none runs."""
        if self._cancel is None:
            return False
        self._cancel.cancel()
        return True

    async def logits(self, ids_json: str) -> str:
        try:
            ids = json.loads(ids_json)
            if not isinstance(ids, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in ids
            ):
                raise GenerationInputError("token ids must be a list of integers")
            vocab = self.runtime.manifest.vocab_size
            if any(i < 0 or i >= vocab for i in ids):
                raise GenerationInputError(f"token ids must lie in [0, {vocab})")
            return json.dumps({"logits": await self.runtime.logits(ids)})
        except Exception as err:
            return _error(err)

    def tokenize(self, text: str) -> str:
        try:
            return json.dumps({"ids": self.runtime.tokenizer.encode(text)})
        except Exception as err:
            return _error(err)

    async def stats(self) -> str:
        # Counted between two background chunks: a chunk in flight holds tensors no state owns yet.
        async with self.runtime.ahead.hold(keep_target=True):
            return self._stats_json()

    def _stats_json(self) -> str:
        cache = self.runtime.cache
        return json.dumps(
            {
                "liveTensors": self.runtime.engine.live_tensors(),
                "heldTensors": self.runtime.held_tensors(),  # the runner's and the kept states'
                "keptStates": len(cache.kept) if cache is not None else 0,
                "keptBytes": cache.held_bytes() if cache is not None else 0,
                # Time spent taking them (no copies: the states stay where they are, GPU included).
                "keepMs": cache.remember_seconds * 1000 if cache is not None else 0.0,
                "ahead": _camel(dataclasses.asdict(self.runtime.ahead.stats)),  # background prefill
            }
        )


async def open_session(
    manifest_text: str,
    engine: Engine,
    files: FileStore,
    model_name: str,
    prefill_chunk: int | None = None,
    max_context: int | None = None,
    max_image_tokens: int | None = None,
    max_prompt_image_tokens: int | None = None,
) -> WebSession | str:
    """Open the bundle on `engine`: the session, or the error JSON (a str) when it cannot be opened."""
    from qwen35web.runtime.tokenizer import Tokenizer

    try:
        manifest = parse_manifest_text(manifest_text)
        try:
            tokenizer = Tokenizer.from_json(files.text(TOKENIZER_FILE))
        except (ValueError, KeyError) as err:
            raise BundleError(f"{TOKENIZER_FILE}: {err}") from None
        await engine.open(MODEL_ROLE, MODEL_FILE)
        await engine.open(SAMPLER_ROLE, manifest.sampler.file)
        if manifest.vision is not None:  # a vision-language bundle: its tower and the patchify graph
            await engine.open(VISION_ROLE, manifest.vision.file)
            await engine.open(PATCHIFY_ROLE, manifest.vision.patchify_file)
        runtime = Runtime(
            manifest,
            tokenizer,
            engine,
            prefill_chunk=prefill_chunk or DEFAULT_PREFILL_CHUNK,
            manifest_sha256=_sha256_text(manifest_text),
            max_context=max_context,
            max_image_tokens=max_image_tokens,
            max_prompt_image_tokens=max_prompt_image_tokens,
        )
    except Exception as err:
        return _error(err)
    return WebSession(runtime, model_name)
