"""The little HTTP/1.1 the server needs, on asyncio streams (standard library only).

Why not a framework: the API is three routes of JSON and one server-sent-event stream, and the one
thing that matters beyond that — noticing a client that closes its connection mid-generation — is a
read on the connection's own stream here. Every response closes its connection (`Connection:
close`), so a request is the connection's only traffic and any read that ends means the client left.
Request bodies need a Content-Length (OpenAI's clients send one); chunked uploads are refused.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

MAX_BODY_BYTES = 64 * 2**20  # images arrive inline as base64 data URLs
MAX_HEADERS = 100


class HttpError(Exception):
    """A request that is not HTTP this server reads: answered with `status` and closed."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class HttpRequest:
    method: str
    path: str  # without the query string
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased
    body: bytes = b""


async def _line(reader: asyncio.StreamReader) -> str:
    try:
        raw = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise HttpError(431, "a request line or header is too long") from None
    except asyncio.IncompleteReadError as err:
        raw = err.partial
    return raw.decode("latin-1").rstrip("\r\n")


async def read_request(reader: asyncio.StreamReader) -> HttpRequest | None:
    """The next request on the connection, or None when the client closed it before sending one."""
    request_line = await _line(reader)
    if not request_line:
        return None
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, f"not an HTTP/1.x request line: {request_line[:80]!r}")
    method, target, _ = parts
    headers: dict[str, str] = {}
    while True:
        line = await _line(reader)
        if not line:
            break
        name, colon, value = line.partition(":")
        if not colon or len(headers) >= MAX_HEADERS:
            raise HttpError(400, "malformed or too many headers")
        headers[name.strip().lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise HttpError(411, "chunked request bodies are not supported: send a Content-Length")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise HttpError(400, "Content-Length is not a number") from None
    if length < 0 or length > MAX_BODY_BYTES:
        raise HttpError(413, f"the request body is over {MAX_BODY_BYTES // 2**20} MB")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise HttpError(400, "the request body ended before its Content-Length") from None
    return HttpRequest(method, target.split("?", 1)[0], headers, body)


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    lines += [f"{name}: {value}" for name, value in {**headers, "Connection": "close"}.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def send_json(writer: asyncio.StreamWriter, status: int, payload: Any) -> None:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    writer.write(_head(status, headers) + body)
    await writer.drain()


async def start_event_stream(writer: asyncio.StreamWriter) -> None:
    """Server-sent events: no length, the stream ends when the connection closes."""
    headers = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
    writer.write(_head(200, headers))
    await writer.drain()


async def send_event(writer: asyncio.StreamWriter, data: str) -> None:
    """One `data:` event (the JSON of a chunk, or `[DONE]`); raises ConnectionError once the client left."""
    if writer.is_closing():
        raise ConnectionResetError("the client closed the connection")
    writer.write(f"data: {data}\n\n".encode())
    await writer.drain()
