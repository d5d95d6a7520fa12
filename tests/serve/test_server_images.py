"""Images as data URLs in user messages: answered on a vision bundle, reused when the history is resent,
refused with an error object when they are not images or the bundle has no vision graph."""

from __future__ import annotations

import base64
import io

import numpy as np
import openai
import pytest
from PIL import Image

MODEL = "tiny-vl"


def _data_url(seed: int, size: tuple[int, int] = (57, 41)) -> str:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _user(text: str, url: str) -> dict:
    return {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}],
    }


def test_an_image_is_seen_and_reused_on_the_next_turn(vision_server):
    client = vision_server.client()
    text_only = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is this?"}], max_tokens=4
    )
    history = [_user("What is this?", _data_url(1))]
    first = client.chat.completions.create(model=MODEL, messages=history, max_tokens=6, temperature=0)
    assert first.usage.prompt_tokens > text_only.usage.prompt_tokens  # type: ignore[union-attr]
    history += [
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "And its colours?"},
    ]
    second = client.chat.completions.create(model=MODEL, messages=history, max_tokens=6, temperature=0)
    # The image's tokens were kept: the resent image is not encoded or prefilled again.
    assert second.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens - 5  # type: ignore[union-attr]
    other = [_user("What is this?", _data_url(2))]
    assert client.chat.completions.create(model=MODEL, messages=other, max_tokens=2).choices


@pytest.mark.parametrize(
    "url",
    [
        "data:image/png;base64," + base64.b64encode(b"this is not a png").decode(),
        "data:text/plain;base64," + base64.b64encode(b"hello").decode(),
        "data:image/png;base64,%%%not-base64",
    ],
    ids=["bytes-not-an-image", "not-an-image-type", "not-base64"],
)
def test_an_image_part_that_is_not_an_image_is_a_400(vision_server, url):
    client = vision_server.client()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[_user("What is this?", url)], max_tokens=2)
    assert caught.value.param == "messages[0].content[0]"  # type: ignore[attr-defined]
    assert client.chat.completions.create(
        model=MODEL, messages=[_user("And this?", _data_url(3))], max_tokens=2
    )


def test_a_text_only_bundle_refuses_images(text_server):
    with pytest.raises(openai.BadRequestError) as caught:
        text_server.client().chat.completions.create(
            model="tiny", messages=[_user("What is this?", _data_url(1))], max_tokens=2
        )
    assert "vision" in str(caught.value)
