"""Images in the page: the tiny random VL bundle (a real vision tower) through the module, on wasm and
WebGPU, against transformers' Qwen3_5ForConditionalGeneration with its PIL processor.

The page decodes and resizes each image itself (images.js, Pillow's arithmetic) and the runtime in
Pyodide runs the patchify and vision graphs: the greedy tokens must be transformers' and the final
logits within 1e-4, for images of odd sizes and modes (RGB, RGBA with transparency, grey with alpha,
a palette with a transparent index). A second turn about the same image reuses the state (no vision
work); a bad image is one clear error and the conversation goes on.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from tests.browser.pages import WatchedPage, open_page
from tests.vision.test_generate_images import NEW_TOKENS, PROMPT, _reference

pytestmark = pytest.mark.browser

LOGIT_TOLERANCE = 1e-4
# Images of odd sizes and modes, as the vl_site fixture (conftest.py) writes them under test-images/.
IMAGE_SETS = {"rgb+rgba": ["rgb-odd.png", "rgba-alpha.png"], "grey-alpha+palette": ["la.png", "palette.png"]}


@pytest.fixture(scope="module", params=["wasm", "webgpu"])
def vl_page(request, browser, vl_site) -> Iterator[WatchedPage]:
    url, _, _ = vl_site
    watched = open_page(browser, url, request.param)
    watched.page.evaluate("window.app.ready")
    yield watched
    watched.page.context.close()


GENERATE = """async ([prompt, urls, maxNewTokens]) => {
    const model = await window.app.model();
    const progress = [];
    let stats = null;
    const request = { prompt, images: urls, greedy: true, maxNewTokens, returnLogits: true };
    for await (const event of model.generate(request)) {
        if (event.type === 'progress') progress.push(event);
        if (event.type === 'done') stats = event.stats;
    }
    return { stats, progress };
}"""


@pytest.mark.parametrize("set_name", sorted(IMAGE_SETS))
def test_greedy_tokens_and_logits_match_transformers(vl_page: WatchedPage, vl_site, set_name: str) -> None:
    _, checkpoint, images = vl_site
    names = IMAGE_SETS[set_name]
    ref_prompt, ref_tokens, ref_logits = _reference(checkpoint, [images[n] for n in names])
    urls = [f"test-images/{n}" for n in names]
    out = vl_page.page.evaluate(GENERATE, [PROMPT, urls, NEW_TOKENS])
    stats = out["stats"]
    assert stats["promptTokens"] == len(ref_prompt)
    assert stats["tokens"] == ref_tokens
    diff = float(np.abs(np.asarray(stats["lastLogits"]) - ref_logits).max())
    print(f"{vl_page.backend} {set_name}: max |logits - transformers| = {diff:.2e}")
    assert diff <= LOGIT_TOLERANCE
    # Each new image went through the vision graph once, and the page heard of it.
    assert stats["imagesEncoded"] == len(names)
    starts = [p for p in out["progress"] if p["phase"] == "vision" and p["state"] == "start"]
    assert [p["image"] for p in starts] == list(range(1, len(names) + 1))
    vl_page.assert_clean()


CHAT = """async ([turns]) => {
    const model = await window.app.model();
    const messages = [];
    const results = [];
    for (const turn of turns) {
        const images = await Promise.all((turn.images || []).map(async (url) => (await fetch(url)).blob()));
        const message = { role: 'user', content: turn.text, images };
        let stats = null;
        try {
            for await (const event of model.chat([...messages, message], { greedy: true, maxNewTokens: 4 })) {
                if (event.type === 'done') stats = event.stats;
            }
        } catch (err) {
            results.push({ error: err.message, name: err.name });
            continue;  // the conversation stays as it was
        }
        messages.push(message, { role: 'assistant', content: stats.text });
        const { reusedTokens: reused, imagesEncoded: encoded, promptTokens: prompt } = stats;
        results.push({ reused, encoded, prompt });
    }
    return results;
}"""


def test_later_turns_reuse_the_image_state_and_a_bad_image_loses_nothing(vl_page: WatchedPage) -> None:
    turns = [
        {"text": "What is this?", "images": ["test-images/chat.png"]},
        {"text": "And the colours?"},
        {"text": "This one?", "images": ["test-images/not-an-image.png"]},
        {"text": "Tell me more."},
    ]
    first, second, bad, fourth = vl_page.page.evaluate(CHAT, [turns])
    assert first["encoded"] == 1
    assert second["encoded"] == 0 and second["reused"] > first["prompt"] - 1  # the image turn is reused
    assert bad["name"] == "InputError" and "is not an image" in bad["error"] and "\n" not in bad["error"]
    assert fourth["encoded"] == 0 and fourth["reused"] >= second["prompt"]  # nothing was lost
    vl_page.assert_clean()


ADD = """async (urls) => {
    const model = await window.app.model();
    const out = [];
    for (const url of urls) {
        try { out.push({ ok: (await model.addImage(url)).imageId }); }
        catch (err) { out.push({ error: err.message, name: err.name }); }
    }
    return out;
}"""


def test_bad_images_are_one_clear_error(browser, vl_site) -> None:
    """The runtime's own limits, asked by the page before it reads any pixels: too elongated (transformers
    allows 200:1), more than MAX_IMAGE_PIXELS; and files that are no image at all. (No graph runs
    for a refusal, so one backend shows them all: wasm.)"""
    url, _, images = vl_site
    page = open_page(browser, url, "wasm")
    page.page.evaluate("window.app.ready")
    directory = images["rgb-odd.png"].parent
    Image.new("RGB", (300, 1)).save(directory / "thin.png")
    Image.new("L", (8200, 8200)).save(directory / "huge.png")  # 67.2 MP > 8192 x 8192; compresses to ~70 kB
    (directory / "empty.png").write_bytes(b"")
    expected = {
        "thin.png": "too elongated (300x1)",
        "huge.png": "too large (8200x8200): at most 67 megapixels",
        "empty.png": "is empty (0 bytes)",
        "not-an-image.png": "is not an image (unknown or unsupported format)",
    }
    results = page.page.evaluate(ADD, [f"test-images/{name}" for name in expected])
    for (name, says), result in zip(expected.items(), results, strict=True):
        assert result.get("name") == "InputError", (name, result)
        assert says in result["error"] and name in result["error"] and "\n" not in result["error"], result
    good = page.page.evaluate(ADD, ["test-images/rgb-odd.png"])  # the model takes images still
    assert len(good[0]["ok"]) == 64
    page.assert_clean()
    page.page.context.close()


PHOTO = """async (url) => {
    const model = await window.app.model();
    const added = await model.addImage(url);
    const progress = [];
    let stats = null;
    const request = { prompt: 'Describe.', images: [url], greedy: true, maxNewTokens: 1 };
    for await (const event of model.generate(request)) {
        if (event.type === 'progress') progress.push(event);
        if (event.type === 'done') stats = event.stats;
    }
    return { added, stats, progress, facts: model.info.facts.vision };
}"""


def test_a_12_megapixel_photo_is_resized_to_the_cap(vl_page: WatchedPage, vl_site) -> None:
    """A 4032x3024 phone photo (JPEG) is decoded, resized to the cap (the page's backend's, and never
    above the bundle's processor: 256 tokens here), encoded, and the page hears of the vision work."""
    from qwen35web.runtime.vision.processor_config import smart_resize, spec_from_preprocessor_config
    from tests.checkpoints import TINY_VISION_CONFIG, preprocessor_config

    _, _, images = vl_site
    path = images["rgb-odd.png"].parent / "photo-12mp.jpg"
    if not path.exists():
        small = np.random.default_rng(9).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(small).resize((4032, 3024), Image.Resampling.BILINEAR).save(path, quality=85)
    out = vl_page.page.evaluate(PHOTO, "test-images/photo-12mp.jpg")
    facts = out["facts"]
    spec = spec_from_preprocessor_config(preprocessor_config(TINY_VISION_CONFIG)).capped(
        facts["maxImageTokens"]
    )
    height, width = smart_resize(3024, 4032, spec)
    assert (out["added"]["width"], out["added"]["height"]) == (width, height)
    assert out["added"]["tokens"] == spec.num_tokens(height, width) <= 256
    assert facts["maxImageTokens"] == 1024 and facts["maxPixels"] == spec.max_pixels
    assert out["stats"]["imagesEncoded"] == 1
    states = [p["state"] for p in out["progress"] if p["phase"] == "vision"]
    assert states == ["start", "done"]
    vl_page.assert_clean()


COMPLETION_WITH_IMAGE = """async (paths) => {
    const model = await window.app.model();
    const dataUrl = async (path) => {
        const blob = await (await fetch(path)).blob();
        return await new Promise((resolve) => {
            const reader = new FileReader();
            reader.onload = () => resolve(reader.result);
            reader.readAsDataURL(blob);
        });
    };
    const ask = async (url) => {
        const content = [{ type: 'text', text: 'What is this?' }];
        if (url) content.unshift({ type: 'image_url', image_url: { url } });
        try {
            const reply = await model.chat.completions.create(
                { messages: [{ role: 'user', content }], max_tokens: 2, temperature: 0 });
            return { prompt: reply.usage.prompt_tokens, finish: reply.choices[0].finish_reason };
        } catch (err) {
            return { name: err.name, error: err.message };
        }
    };
    const added = await model.addImage(paths[0]);
    const good = await ask(await dataUrl(paths[0]));
    const textOnly = await ask(null);
    const bad = await ask('data:image/png;base64,' + btoa('not an image at all'));
    return { tokens: added.tokens, good, textOnly, bad };
}"""


def test_chat_completions_take_image_data_urls(vl_page: WatchedPage) -> None:
    """image_url data URLs in model.chat.completions.create: decoded in the worker as addImage does (the
    image's tokens join the prompt); bytes that are no image are one typed error naming the part."""
    got = vl_page.page.evaluate(COMPLETION_WITH_IMAGE, ["test-images/chat.png"])
    assert got["good"].get("finish") == "length", got
    assert got["good"]["prompt"] >= got["textOnly"]["prompt"] + got["tokens"]
    assert got["bad"]["name"] == "InputError" and got["bad"]["error"].startswith("messages[0].content[0]: ")
    vl_page.assert_clean()
