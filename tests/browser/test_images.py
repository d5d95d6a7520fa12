"""web/static/images.js in Chromium against Pillow: the page's decode, alpha compositing and resize give
the bytes the native runtime's `prepare_image` gives (transformers' PIL processor), and bad images are
refused with one sentence.

Served bare (images.js, errors.mjs, the sample files): no model is needed. Measured and asserted here:
PNG, GIF and BMP of every mode are byte-identical to Pillow; the resampling arithmetic is identical for
every PIL filter images.js offers, upscaling and downscaling; JPEG decoders differ (Chromium's
libjpeg-turbo vs Pillow's), so JPEG is held to the bound measured below, not to equality.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qwen35web.runtime.native.image_decode import open_image, prepare_image, to_rgb
from qwen35web.runtime.vision.processor_config import spec_from_preprocessor_config
from qwen35web.web.serve import serving
from tests.browser.pages import WatchedPage, watch
from tests.vision.images import write_rotated_jpeg, write_sample_images

pytestmark = pytest.mark.browser

STATIC = Path(__file__).resolve().parents[2] / "qwen35web" / "web" / "static"
# Two processors: Qwen2-VL's factor 28 and Qwen3.5's 32, limits small enough that images are scaled
# both up and down.
SPECS = {
    "f28": spec_from_preprocessor_config(
        {"patch_size": 14, "min_pixels": 56 * 56, "max_pixels": 28 * 28 * 64}
    ),
    "f32": spec_from_preprocessor_config(
        {"patch_size": 16, "min_pixels": 64 * 64, "max_pixels": 32 * 32 * 40}
    ),
}
# JPEG: the largest per-byte difference between Chromium's decode + our resize and Pillow's, as measured
# (Chromium 156, Pillow 13.0.0): both use libjpeg-turbo with the same IDCT and upsampling, so YCbCr JPEGs
# (4:2:0, EXIF-rotated) match exactly; Adobe CMYK JPEGs are converted to RGB slightly apart.
JPEG_MAX_DIFF = {"large": 0, "rotated-jpeg": 0, "cmyk-jpeg": 2}

# prepareImage on a URL in the page; the RGB bytes come back as base64, the sizes it was asked about too.
PREPARE = """async ([url, size, resample]) => {
    const m = await import('./worker/images.js');
    const b64 = (bytes) => { let s = ''; for (let i = 0; i < bytes.length; i += 0x8000)
        s += String.fromCharCode(...bytes.subarray(i, i + 0x8000)); return btoa(s); };
    try {
        const seen = [];
        const targetSize = (h, w) => { seen.push([h, w]); return size === null ? [h, w] : size; };
        const out = await m.prepareImage(url, { targetSize, resample });
        return { height: out.height, width: out.width, rgb: b64(out.rgb), seen };
    } catch (err) { return { error: err.message, code: err.code }; }
}"""
RESIZE = """async ([b64, width, height, outWidth, outHeight, resample]) => {
    const m = await import('./worker/images.js');
    const raw = atob(b64); const rgb = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) rgb[i] = raw.charCodeAt(i);
    const out = m.resizeRGB(rgb, width, height, outWidth, outHeight, resample);
    let s = '';
    for (let i = 0; i < out.length; i += 0x8000) s += String.fromCharCode(...out.subarray(i, i + 0x8000));
    return btoa(s);
}"""


def _all_colour_alpha_pairs(path: Path) -> Path:
    """256x256 RGBA: row = alpha, column = colour, so every (colour, alpha) pair is composited."""
    a, c = np.mgrid[0:256, 0:256]
    rgba = np.stack([c, 255 - c, (c * 7) % 256, a], axis=-1).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(path)
    return path


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("images-site")
    for name in ("worker/images.js", "errors.mjs"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes((STATIC / name).read_bytes())
    (root / "index.html").write_text("<!doctype html><title>images</title>\n")
    files = write_sample_images(root / "img")
    files["rotated-jpeg"] = write_rotated_jpeg(root / "img" / "rotated.jpg")
    files["all-alpha"] = _all_colour_alpha_pairs(root / "img" / "all-alpha.png")
    rng = np.random.default_rng(21)
    files["rgba-noise"] = root / "img" / "rgba-noise.png"
    Image.fromarray(rng.integers(0, 256, (61, 45, 4), dtype=np.uint8), "RGBA").save(files["rgba-noise"])
    files["rgb-big"] = root / "img" / "rgb-big.png"
    Image.fromarray(rng.integers(0, 256, (700, 500, 3), dtype=np.uint8)).save(files["rgb-big"])
    (root / "img" / "not-an-image.png").write_text("this is text, not a PNG\n")
    files["not-an-image"] = root / "img" / "not-an-image.png"
    (root / "img" / "empty.png").write_bytes(b"")
    files["empty"] = root / "img" / "empty.png"
    files["zero-size"] = root / "img" / "zero.png"
    files["zero-size"].write_bytes(_png_header_only(0, 5))
    return files


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming width x height, and no pixel data."""
    import struct
    import zlib

    body = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + body + struct.pack(">I", zlib.crc32(body))


@pytest.fixture(scope="module")
def images_page(browser, samples: dict[str, Path]) -> Iterator[WatchedPage]:
    root = samples["rgb-odd"].parents[1]
    with serving(root) as url:
        context = browser.new_context()
        watched = watch(context, url)
        watched.page.goto(url)
        yield watched
        context.close()


def _url(samples: dict[str, Path], name: str) -> str:
    return "img/" + samples[name].name


def _page_prepare(page: WatchedPage, url: str, size: tuple[int, int] | None, resample: int = 3) -> dict:
    result = page.page.evaluate(PREPARE, [url, list(size) if size else None, resample])
    if "rgb" in result:
        result["rgb"] = base64.b64decode(result["rgb"])
    return result


def _max_diff(a: bytes, b: bytes) -> int:
    return int(np.abs(np.frombuffer(a, np.uint8).astype(int) - np.frombuffer(b, np.uint8).astype(int)).max())


EXACT = ["rgb-odd", "grey-wide", "grey-alpha-tall", "palette", "palette-transparent", "rgba-448",
         "bilevel", "tiny-1x1", "tiny-2x3", "rgba-noise", "rgb-big"]  # fmt: skip


@pytest.mark.parametrize("spec_name", sorted(SPECS))
@pytest.mark.parametrize("name", EXACT)
def test_page_bytes_equal_pillow(images_page: WatchedPage, samples, name: str, spec_name: str) -> None:
    spec = SPECS[spec_name]
    expected = prepare_image(samples[name], spec)
    source = open_image(samples[name])
    result = _page_prepare(images_page, _url(samples, name), (expected.height, expected.width))
    assert "error" not in result, result
    assert result["seen"] == [[source.height, source.width]]  # the size asked about is the decoded one
    assert (result["height"], result["width"]) == (expected.height, expected.width)
    assert result["rgb"] == expected.rgb, f"max diff {_max_diff(result['rgb'], expected.rgb)}"
    images_page.assert_clean()


def test_every_colour_and_alpha_composites_as_pillow(images_page: WatchedPage, samples) -> None:
    """The canvas holds premultiplied pixels; composited onto white they still give PIL's bytes."""
    expected = to_rgb(open_image(samples["all-alpha"])).tobytes()
    result = _page_prepare(images_page, _url(samples, "all-alpha"), None)
    assert result["rgb"] == expected, f"max diff {_max_diff(result['rgb'], expected)}"


@pytest.mark.parametrize("resample", [1, 2, 3, 4, 5])
def test_resampling_arithmetic_equals_pillow(images_page: WatchedPage, resample: int) -> None:
    """Up, down, one axis, and both pass orders (Pillow 13 goes vertical first when the height loses
    more than twice the columns the width does: 40->19 rows with 60->50 columns; 40->20 is the tie)."""
    rng = np.random.default_rng(resample)
    shapes = [((53, 37), (28, 56)), ((20, 300), (28, 280)), ((400, 9), (392, 28)), ((1, 1), (32, 32)),
              ((700, 500), (160, 128)), ((33, 33), (33, 66)), ((48, 64), (96, 64)), ((997, 13), (31, 200)),
              ((40, 60), (20, 50)), ((40, 60), (19, 50)), ((300, 200), (64, 160))]  # fmt: skip
    for (height, width), (out_h, out_w) in shapes:
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        expected = Image.fromarray(pixels).resize((out_w, out_h), resample=resample).tobytes()
        got = images_page.page.evaluate(
            RESIZE, [base64.b64encode(pixels.tobytes()).decode(), width, height, out_w, out_h, resample]
        )
        got_bytes = base64.b64decode(got)
        assert got_bytes == expected, (
            f"{width}x{height} -> {out_w}x{out_h}: max diff {_max_diff(got_bytes, expected)}"
        )


@pytest.mark.parametrize("name", sorted(JPEG_MAX_DIFF))
def test_jpeg_is_within_the_measured_bound(images_page: WatchedPage, samples, name: str) -> None:
    spec = SPECS["f32"]
    expected = prepare_image(samples[name], spec)
    result = _page_prepare(images_page, _url(samples, name), (expected.height, expected.width))
    assert "error" not in result, result
    assert (result["height"], result["width"]) == (expected.height, expected.width)  # rotated: upright
    diff = _max_diff(result["rgb"], expected.rgb)
    print(f"{name}: max |page - Pillow| = {diff}")
    assert diff <= JPEG_MAX_DIFF[name]


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("not-an-image", "is not an image (unknown or unsupported format)"),
        ("empty", "is empty (0 bytes)"),
        ("zero-size", "is not an image"),
        ("cmyk", "is not an image"),  # TIFF: Pillow reads it, Chromium does not
    ],
)
def test_bad_images_are_refused_in_one_sentence(
    images_page: WatchedPage, samples, name: str, says: str
) -> None:
    result = _page_prepare(images_page, _url(samples, name), (32, 32))
    assert result.get("code") == "bad-input", result
    assert says in result["error"] and "\n" not in result["error"]
    assert _url(samples, name) in result["error"]  # it names the image


def test_refusals_of_the_size_name_the_image(images_page: WatchedPage, samples) -> None:
    """targetSize (the runtime's smart_resize and limits) refusing a size: its sentence, prefixed."""
    result = images_page.page.evaluate("""async (url) => {
        const m = await import('./worker/images.js');
        const targetSize = () => {
            const e = new Error('too elongated (1x300)'); e.code = 'bad-input'; throw e;
        };
        try { await m.prepareImage(url, { targetSize }); return null; }
        catch (err) { return { message: err.message, code: err.code }; }
    }""", _url(samples, "rgb-odd"))  # fmt: skip
    assert result == {"message": f"{_url(samples, 'rgb-odd')}: too elongated (1x300)", "code": "bad-input"}
    wrong = images_page.page.evaluate("""async () => {
        const m = await import('./worker/images.js');
        try { await m.prepareImage(42, { targetSize: () => [1, 1] }); return null; }
        catch (err) { return err.message; }
    }""")  # fmt: skip
    assert wrong == "an image must be a Blob, File, ImageBitmap or URL string, not number"


def test_blob_file_and_bitmap_sources_agree(images_page: WatchedPage, samples) -> None:
    spec = SPECS["f28"]
    expected = prepare_image(samples["palette-transparent"], spec)
    results = images_page.page.evaluate("""async ([url, size]) => {
        const m = await import('./worker/images.js');
        const blob = await (await fetch(url)).blob();
        const file = new File([blob], 'picked.png', { type: 'image/png' });
        const options = { premultiplyAlpha: 'none', colorSpaceConversion: 'none' };
        const bitmap = await createImageBitmap(blob, options);
        const out = [];
        for (const source of [blob, file, bitmap]) {
            const r = await m.prepareImage(source, { targetSize: () => size });
            out.push(Array.from(r.rgb.subarray(0, 64)).join(',') + '/' + r.rgb.length);
        }
        return out;
    }""", [_url(samples, "palette-transparent"), [expected.height, expected.width]])  # fmt: skip
    want = ",".join(str(b) for b in expected.rgb[:64]) + f"/{len(expected.rgb)}"
    assert results == [want, want, want]
