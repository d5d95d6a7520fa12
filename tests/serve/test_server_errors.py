"""Bad requests get the right status and an OpenAI error object; the server answers the next one."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import openai
import pytest

MODEL = "tiny"
HELLO = [{"role": "user", "content": "Hello"}]
WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}


def _post(base_url: str, body: bytes, path: str = "/chat/completions") -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(base_url + path, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _assert_error_object(payload: dict[str, Any]) -> dict[str, Any]:
    error = payload["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return error


REMOTE_IMAGE = {
    "role": "user",
    "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}],
}
TOO_LONG = {"role": "user", "content": "json pathlib " * 4000}

# (what is wrong, request fields over a good request, status, param the error names)
BAD_REQUESTS = [
    ("missing messages", {"messages": None}, 400, "messages"),
    ("empty messages", {"messages": []}, 400, "messages"),
    ("unknown role", {"messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages[0].role"),
    ("content not text", {"messages": [{"role": "user", "content": 5}]}, 400, "messages[0].content"),
    ("unknown model", {"model": "gpt-4o"}, 404, None),
    ("two choices", {"n": 2}, 400, "n"),
    ("temperature out of range", {"temperature": 3}, 400, "temperature"),
    ("max_tokens zero", {"max_tokens": 0}, 400, "max_tokens"),
    ("stop not text", {"stop": [1]}, 400, "stop"),
    (
        "tool schema not an object",
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]},
        400,
        "tools[0].function.parameters",
    ),
    (
        "tool_choice names a missing tool",
        {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "time"}}},
        400,
        "tool_choice",
    ),
    ("response_format unknown", {"response_format": {"type": "yaml"}}, 400, "response_format"),
    ("a schema keyword outside the subset", {"response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "string", "pattern": "a+"}}}}, 400, None),
    ("image url not a data URL", {"messages": [REMOTE_IMAGE]}, 400, "messages[0].content[0]"),
    ("too long for the context", {"messages": [TOO_LONG]}, 400, "messages"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "fields", "status", "param"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_a_bad_request_is_an_error_object(text_server, case, fields, status, param):
    body = {"model": MODEL, "messages": HELLO, "max_tokens": 2, **fields}
    body = {key: value for key, value in body.items() if value is not None}
    got, payload = _post(text_server.base_url, json.dumps(body).encode())
    assert got == status, payload
    assert _assert_error_object(payload)["param"] == param
    # The server goes on serving.
    assert text_server.client().chat.completions.create(model=MODEL, messages=HELLO, max_tokens=2).choices


def test_the_context_error_says_how_long_the_request_is(text_server):
    body = {"model": MODEL, "messages": [TOO_LONG]}
    _, payload = _post(text_server.base_url, json.dumps(body).encode())
    error = _assert_error_object(payload)
    assert error["code"] == "context_length_exceeded" and "context holds 4096" in error["message"]


@pytest.mark.parametrize(
    ("body", "path", "status"),
    [
        (b"{not json", "/chat/completions", 400),
        (b"[1, 2]", "/chat/completions", 400),
        (b"{}", "/nowhere", 404),
    ],
)
def test_bad_json_and_unknown_routes(text_server, body, path, status):
    got, payload = _post(text_server.base_url, body, path)
    assert got == status
    _assert_error_object(payload)


def test_the_openai_client_raises_its_typed_errors(text_server):
    client = text_server.client()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "wizard", "content": "hi"}])  # type: ignore[misc, list-item]
    assert caught.value.status_code == 400 and caught.value.param == "messages[0].role"  # type: ignore[attr-defined]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]


def test_penalties_reach_the_sampler_or_are_refused(text_server):
    """Where the sampler has them they change the answer; else one 400 naming the field, never an
    answer that silently ignores it."""
    from dataclasses import fields

    from qwen35web.runtime.sampling import SamplingParams

    client = text_server.client()
    if "presence_penalty" in {f.name for f in fields(SamplingParams)}:
        settings = {
            "model": MODEL,
            "messages": HELLO,
            "max_tokens": 24,
            "seed": 5,
            "extra_body": {"min_tokens": 24},
        }
        plain = client.chat.completions.create(**settings).choices[0].message.content
        penalised = client.chat.completions.create(**settings, presence_penalty=2.0, frequency_penalty=2.0)
        assert penalised.choices[0].message.content != plain  # the penalties reach the sampler
        return
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=2, presence_penalty=0.5)
    assert "not supported by this server version" in str(caught.value)


def test_http_the_server_does_not_take_is_refused_with_an_error_object(text_server):
    """A wrong method, a chunked upload: the right status and an error object, and it goes on."""
    import http.client
    from urllib.parse import urlsplit

    address = urlsplit(text_server.base_url)
    cases = [
        ("GET", "/v1/chat/completions", {}, None, 405),
        ("POST", "/v1/models", {"Content-Length": "0"}, b"", 405),
        ("POST", "/v1/chat/completions", {"Transfer-Encoding": "chunked"}, b"0\r\n\r\n", 411),
    ]
    for method, path, headers, body, status in cases:
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        assert response.status == status, (method, path)
        _assert_error_object(json.loads(response.read()))
        connection.close()
    assert text_server.client().models.list().data
