"""The routes: `POST /v1/chat/completions`, `GET /v1/models[/{id}]`; every error an OpenAI error object.

A chat request is checked here (JSON, fields, model name) before it queues for the model; what needs
the model (images, the rendered prompt against the context) is checked on the model's thread before
any output, so a refused request always gets a status and an error object, never a broken stream.
While a request waits or generates, a read on its connection watches for the client leaving: the
generation is cancelled at its next token (or skipped if still queued) and the server goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from qwen35web.runtime.generation import CancelToken
from qwen35web.runtime.loaded_model import Runtime
from qwen35web.runtime.openai_api.completion import ChatCompletion, check_model, model_list, model_object
from qwen35web.runtime.openai_api.errors import ApiError, not_found, server_error
from qwen35web.runtime.openai_api.request import ChatRequest, parse_chat_request
from qwen35web.serve.http import (
    HttpError,
    HttpRequest,
    read_request,
    send_event,
    send_json,
    start_event_stream,
)
from qwen35web.serve.worker import ModelWorker

log = logging.getLogger("qwen35web.serve")

CHAT_PATH, MODELS_PATH = "/v1/chat/completions", "/v1/models"


@dataclass
class Outcome:
    """How a chat request ended, for its log line."""

    status: int = 200
    note: str = ""


class ChatServer:
    def __init__(self, worker: ModelWorker, runtime: Runtime, model_id: str, default_max_tokens: int):
        self.worker = worker
        self.runtime = runtime
        self.model_id = model_id
        self.default_max_tokens = default_max_tokens
        self.created = int(time.time())
        self.cancels: set[CancelToken] = set()  # in-flight generations (cancelled on shutdown)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: one request, one response, closed."""
        started, peer = time.perf_counter(), writer.get_extra_info("peername")
        method, path, outcome = "-", "-", Outcome()
        try:
            request = await read_request(reader)
            if request is None:
                return
            method, path = request.method, request.path
            outcome = await self.route(request, reader, writer)
        except HttpError as err:
            outcome = Outcome(err.status, err.message)
            await self._send_error(writer, ApiError(err.message, status=err.status))
        except ConnectionError:
            outcome.note = "cancelled: the client closed the connection"
        finally:
            with contextlib.suppress(ConnectionError, OSError):
                writer.close()
            seconds = time.perf_counter() - started
            address = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "-"
            note = f" {outcome.note}" if outcome.note else ""
            if method != "-" or outcome.status != 200:  # a connection that sent nothing is not logged
                log.info("%s %s %s %d %.2fs%s", address, method, path, outcome.status, seconds, note)

    async def route(
        self, request: HttpRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Outcome:
        try:
            if request.path == CHAT_PATH:
                if request.method != "POST":
                    raise ApiError(f"{CHAT_PATH} takes POST", status=405, code="method_not_allowed")
                return await self.chat(self._chat_request(request.body), reader, writer)
            if request.path == MODELS_PATH or request.path.startswith(MODELS_PATH + "/"):
                if request.method != "GET":
                    raise ApiError(f"{MODELS_PATH} takes GET", status=405, code="method_not_allowed")
                await send_json(writer, 200, self._models(request.path))
                return Outcome()
            raise not_found(f"no route {request.method} {request.path} (try {CHAT_PATH} or {MODELS_PATH})")
        except ApiError as err:
            await self._send_error(writer, err)
            return Outcome(err.status, err.message)

    def _models(self, path: str) -> dict[str, Any]:
        if path == MODELS_PATH:
            return model_list(self.model_id, self.created)
        check_model(path[len(MODELS_PATH) + 1 :], self.model_id)
        return model_object(self.model_id, self.created)

    def _chat_request(self, body: bytes) -> ChatRequest:
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as err:
            raise ApiError(f"the request body is not valid JSON ({err})", code="invalid_json") from None
        request = parse_chat_request(payload)
        check_model(request.model, self.model_id)
        return request

    async def _send_error(self, writer: asyncio.StreamWriter, err: ApiError) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            await send_json(writer, err.status, err.to_json())

    async def chat(
        self, request: ChatRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Outcome:
        cancel = CancelToken()
        self.cancels.add(cancel)
        watcher = asyncio.create_task(_watch_for_close(reader, cancel))
        events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        emit = _emitter(events)
        job = asyncio.create_task(self.worker.run(lambda: self._generate(request, cancel, emit)))
        # The job reports through `events`; nothing waits on it once the response is written.
        job.add_done_callback(lambda task: task.cancelled() or task.exception())
        stream = _drain(events)
        try:
            return await self._respond(request, stream, writer)
        except ConnectionError:  # the reply could not be written: stop it, log how far it went
            cancel.cancel()
            outcome = Outcome(200, "cancelled: the client closed the connection")
            async for kind, value in stream:
                if kind == "done":
                    outcome.note = _summary(value)
            return outcome
        finally:
            cancel.cancel()  # a reply that could not be delivered stops at its next token
            watcher.cancel()
            self.cancels.discard(cancel)

    async def _generate(self, request: ChatRequest, cancel: CancelToken, emit: Any) -> None:
        """On the model's thread: open (every refusal before output), then stream or answer."""
        if cancel.cancelled:
            emit(("gone", None))
            return
        try:
            completion = ChatCompletion(self.runtime, request, self.model_id, self.default_max_tokens)
            await completion.open(cancel)
            emit(("start", None))
            if request.stream:
                async for chunk in completion.chunks():
                    emit(("chunk", chunk))
            else:
                emit(("response", await completion.response()))
            emit(("done", completion))
        except ApiError as err:
            emit(("error", err))
        except Exception as err:  # a bug or an engine failure: reported, and the server keeps serving
            log.exception("the generation failed")
            emit(("error", server_error(f"the generation failed: {type(err).__name__}: {err}")))

    async def _respond(
        self,
        request: ChatRequest,
        events: AsyncIterator[tuple[str, Any]],
        writer: asyncio.StreamWriter,
    ) -> Outcome:
        streaming = False
        async for kind, value in events:
            if kind == "gone":
                return Outcome(499, "cancelled while queued: the client closed the connection")
            if kind == "error":
                if streaming:  # after the 200 head: an error event, then the stream ends
                    await send_event(writer, json.dumps(value.to_json()))
                    return Outcome(200, f"failed mid-stream: {value.message}")
                await self._send_error(writer, value)
                return Outcome(value.status, value.message)
            if kind == "start" and request.stream:
                await start_event_stream(writer)
                streaming = True
            elif kind == "chunk":
                await send_event(writer, json.dumps(value, ensure_ascii=False))
            elif kind == "response":
                await send_json(writer, 200, value)
            elif kind == "done":
                if streaming:  # the last write: a client that left just before it changes nothing
                    with contextlib.suppress(ConnectionError, OSError):
                        await send_event(writer, "[DONE]")
                return Outcome(200, _summary(value))
        return Outcome(500, "the generation ended without a result")

    def cancel_all(self) -> None:
        for cancel in list(self.cancels):
            cancel.cancel()


def _emitter(events: asyncio.Queue[tuple[str, Any]]) -> Any:
    """A thread-safe `emit(event)` for the model's thread, into the HTTP loop's queue."""
    loop = asyncio.get_running_loop()

    def emit(event: tuple[str, Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the server stopped (its loop closed): nobody listens
            loop.call_soon_threadsafe(events.put_nowait, event)

    return emit


async def _drain(events: asyncio.Queue[tuple[str, Any]]) -> AsyncIterator[tuple[str, Any]]:
    while True:
        event = await events.get()
        yield event
        if event[0] in ("done", "error", "gone"):
            return


async def _watch_for_close(reader: asyncio.StreamReader, cancel: CancelToken) -> None:
    """The request is the connection's only traffic: a read that ends means the client left."""
    with contextlib.suppress(ConnectionError, OSError):
        while await reader.read(4096):
            pass
    # No log line here: a client also closes once it has read a whole answer; the request's own
    # line says whether its generation was cut short ("cancelled after N tokens").
    cancel.cancel()


def _summary(completion: ChatCompletion) -> str:
    result, usage = completion.result, completion.usage
    assert result is not None
    if result.stop_reason == "cancelled":
        return f"cancelled after {usage.completion_tokens} tokens (the client closed the connection)"
    return (
        f"prompt={usage.prompt_tokens} cached={usage.cached_tokens} completion={usage.completion_tokens} "
        f"finish={completion.finish_reason} prefill={result.prefill_ms / 1000:.2f}s "
        f"decode={result.decode_tokens_per_s:.1f} tok/s"
        + (f" tool_calls={len(completion.calls)}" if completion.calls else "")
    )
