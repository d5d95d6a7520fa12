"""The module's `chat.completions.create` in Python: one OpenAI chat-completions request run in the page.

The same mapping the native server serves (`runtime/openai_api`): the request is checked as OpenAI's
API checks it, run as a `Conversation.reply`, and answered with a `chat.completion` object, or, when
streaming, `chat.completion.chunk` objects handed one by one to `on_chunk` (as JSON text: the FFI
boundary carries strings). A refused request answers the page's error JSON (`{"error", "code"}`) with
OpenAI's error object beside it (`"openai"`), so the module throws its typed error carrying both.

Images: the worker decodes each `image_url` data URL itself (worker/images.js, as `addImage` does) and
registers it before the call; the ids arrive here in the order the mapping meets the image parts (by
message, then by part), and the mapping's image hook hands them out in that order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from qwen35web.runtime.errors import GenerationInputError
from qwen35web.runtime.generation import CancelToken
from qwen35web.runtime.loaded_model import Runtime
from qwen35web.runtime.openai_api.completion import ChatCompletion
from qwen35web.runtime.openai_api.errors import ApiError
from qwen35web.runtime.openai_api.request import parse_chat_request

# OpenAI error codes -> the page's error classes (errors.mjs); anything else a request refuses is bad input.
_PAGE_CODES = {"context_length_exceeded": "context-full"}


def api_error_json(err: ApiError) -> str:
    """The page's error JSON for a refused request, OpenAI's error object under "openai"."""
    page_code = _PAGE_CODES.get(err.code or "", "bad-input" if err.status < 500 else "runtime")
    openai = err.to_json()["error"]
    return json.dumps(
        {
            "error": err.message,
            "code": page_code,
            "errorType": "ApiError",
            "openai": openai,
            "status": err.status,
        }
    )


class _Images:
    """The mapping's image hook: the ids the worker registered, handed out in order."""

    def __init__(self, image_ids: list[str]):
        self.pending = list(image_ids)

    def __call__(self, _data: bytes) -> str:
        if not self.pending:  # the worker registers every data-URL image part before the call
            raise GenerationInputError("an image part reached the runtime without being decoded")
        return self.pending.pop(0)


def _image_ids(image_ids_json: str | None) -> list[str]:
    ids = json.loads(image_ids_json) if image_ids_json else []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise GenerationInputError("image ids must be a list of strings")
    return ids


async def run_chat_completion(
    runtime: Runtime,
    model_id: str,
    request_json: str,
    on_chunk: Callable[[str], Any],
    cancel: CancelToken,
    image_ids_json: str | None = None,
) -> str:
    """Run the request: JSON `{"response": chat.completion, "stopReason"}`, or when streaming (after
    every chunk went through `on_chunk`) `{"response": null, "streamed": n, "stopReason"}`; the runtime's
    stop reason tells a cancelled reply from a finished one. ApiError for a refused request; other
    errors propagate."""
    try:
        body = json.loads(request_json)
    except ValueError:
        raise ApiError("the request is not valid JSON", code="invalid_json") from None
    if isinstance(body, dict) and "model" not in body:
        body = {**body, "model": model_id}  # in the page there is one model: naming it is optional
    request = parse_chat_request(body)
    completion = ChatCompletion(runtime, request, model_id)
    await completion.open(cancel, add_image=_Images(_image_ids(image_ids_json)))
    if not request.stream:
        response = await completion.response()
        return json.dumps({"response": response, "stopReason": completion.result.stop_reason})
    sent = 0
    async for chunk in completion.chunks():
        on_chunk(json.dumps(chunk))
        sent += 1
    return json.dumps({"response": None, "streamed": sent, "stopReason": completion.result.stop_reason})
