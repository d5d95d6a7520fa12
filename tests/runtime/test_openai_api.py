"""The OpenAI mapping without HTTP (what the page can reuse): messages to the template's shapes, and
reasoning split out as `reasoning_content` in responses and stream deltas."""

from __future__ import annotations

import dataclasses
import json

import pytest

from qwen35web.runtime.native.open_bundle import open_native
from qwen35web.runtime.openai_api.completion import ChatCompletion
from qwen35web.runtime.openai_api.errors import ApiError
from qwen35web.runtime.openai_api.messages import runtime_messages
from qwen35web.runtime.openai_api.request import parse_chat_request
from tests.run_async import run_async

# Renders past reasoning, and opens a <think> in the generation prompt: all a random model writes is
# reasoning (it never closes the tag in a few tokens).
THINKING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{% if m.reasoning_content %}<think>\n"
    "{{ m.reasoning_content }}\n</think>\n{% endif %}{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)


def test_messages_become_the_templates_shapes():
    request = parse_chat_request(
        {
            "model": "m",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {
                    "role": "assistant",
                    "content": None,
                    "reasoning_content": "thinking",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "2"},
            ],
        }
    )
    system, user, assistant, tool = runtime_messages(request.messages, add_image=lambda data: "unused")
    assert system == {"role": "system", "content": "Be brief."}
    assert user == {"role": "user", "content": "a\nb"}
    assert assistant["reasoning_content"] == "thinking" and assistant["content"] == ""
    assert assistant["tool_calls"][0]["function"] == {"name": "f", "arguments": {"x": 1}}
    assert tool == {"role": "tool", "content": "2", "tool_call_id": "c1"}


def test_images_are_registered_through_the_hook():
    url = "data:image/png;base64," + "aGVsbG8="
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
    seen: list[bytes] = []
    converted = runtime_messages([message], add_image=lambda data: seen.append(data) or "id-1")
    assert seen == [b"hello"] and converted[0]["content"] == [{"type": "image", "image_id": "id-1"}]


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes"},
        {"model": "m", "messages": [{"role": "assistant", "content": "x", "tool_calls": [{"function": {}}]}]},
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "audio"}]}]},
        {
            "model": "m",
            "messages": [{"role": "system", "content": [{"type": "image_url", "image_url": "x"}]}],
        },
        {"model": 5, "messages": [{"role": "user", "content": "x"}]},
    ],
    ids=["tool-choice", "tool-call-shape", "part-type", "image-in-system", "model-type"],
)
def test_bad_fields_name_their_parameter(body):
    with pytest.raises(ApiError) as caught:
        parse_chat_request(body)
    assert caught.value.status == 400 and caught.value.to_json()["error"]["message"]


async def _thinking_replies(bundle) -> tuple[dict, list[dict], str]:
    runtime = await open_native(bundle)
    runtime.manifest = dataclasses.replace(runtime.manifest, chat_template=THINKING_TEMPLATE)
    try:
        body = {"model": "m", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 6, "seed": 1}
        whole = ChatCompletion(runtime, parse_chat_request(body), "m")
        await whole.open()
        response = await whole.response()
        streamed = ChatCompletion(runtime, parse_chat_request({**body, "stream": True}), "m")
        await streamed.open()
        chunks = [chunk async for chunk in streamed.chunks()]
        resent = [*body["messages"], response["choices"][0]["message"], {"role": "user", "content": "Again"}]
        again = ChatCompletion(runtime, parse_chat_request({**body, "messages": resent}), "m")
        await again.open()
        assert again.conversation is not None
        rendered = runtime.tokenizer.decode(again.conversation.render(again.conversation.messages).ids)
        return response, chunks, rendered
    finally:
        await runtime.close()


def test_reasoning_comes_back_as_reasoning_content(export_bundle):
    response, chunks, rendered = run_async(_thinking_replies(export_bundle("text", "fused")))
    message = response["choices"][0]["message"]
    assert message["reasoning_content"] and message["content"] == ""
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
    streamed = "".join(delta.get("reasoning_content", "") for delta in deltas)
    assert streamed == message["reasoning_content"]
    assert not any(delta.get("content") for delta in deltas)
    # Sent back with the next request, the reasoning reaches the template.
    assert f"<think>\n{message['reasoning_content']}\n</think>" in rendered
    json.dumps(chunks)  # every chunk is plain JSON
