"""The page's bad-input catalogue (wasm): each case gives one readable sentence, never a hang.

Requests the page refuses (empty prompt, bad settings, ids out of vocabulary, ...) are in
test_page_api.py, corrupt downloads in test_weights_cache.py. Here: a prompt beyond the model's
context, bundles doctored after the site was built (the build verifies bundles, so a broken one can
only reach the page this way: a partial upload, a server-side edit), and a browser with no WebGPU
adapter, where the page falls back to wasm and says why.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.chromium import CHROMIUM, OFFLINE_FLAGS
from qwen35web.web.build import SiteSpec, build_site
from qwen35web.web.serve import serving
from tests.browser.pages import MODEL_NAME, READY_TIMEOUT_MS, WatchedPage, open_page, watch
from tests.old_bundles import FORMAT_1_MESSAGE, format_1_manifest

pytestmark = pytest.mark.browser

REPO_ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = "model.onnx.data"
# worker.js chooseBackend's words when the browser offers no adapter at all.
NO_ADAPTER_REASON = "no WebGPU adapter in this browser: running on wasm"


def _settled(watched: WatchedPage, script: str, arg: object = None) -> str:
    """'resolved', the rejection's message, or 'timed out': page.evaluate itself never times out."""
    race = f"new Promise(resolve => setTimeout(() => resolve('timed out'), {READY_TIMEOUT_MS}))"
    return watched.page.evaluate(
        f"arg => Promise.race([({script}).then(() => 'resolved', e => e.message), {race}])", arg
    )


# --- 1. a prompt longer than the model's context -------------------------------------------


def _native_refusal(bundle: Path, prompt: str) -> str:
    """What the native runtime's command line says when asked to generate from `prompt`
    (a subprocess: Playwright's sync API already runs an event loop in this thread)."""
    command = [sys.executable, "-m", "qwen35web", "generate", str(bundle), "--prompt", prompt]
    done = subprocess.run(
        [*command, "--max-new-tokens", "1"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2, done.stderr
    return done.stderr.strip().removeprefix("error: ")


def test_prompt_beyond_the_context_is_refused_as_natively(wasm_page: WatchedPage, export_bundle) -> None:
    bundle = export_bundle("text", "fused")
    context = json.loads((bundle / "manifest.json").read_text())["model"]["max_position_embeddings"]
    # At least five tokens per repetition (five pre-tokenizer pieces), so well past the context.
    prompt = "The quick brown fox. " * (context // 4)
    expected = _native_refusal(bundle, prompt)
    match = re.fullmatch(rf"the prompt has (\d+) tokens; the context holds {context}", expected)
    assert match and int(match.group(1)) > context, expected
    wasm_page.ready()
    got = _settled(wasm_page, "app.generate({prompt: arg, maxNewTokens: 1})", prompt)
    assert got == expected
    wasm_page.assert_clean()


# --- 2. bundles doctored after the site was built --------------------------------------------


def _replace(path: Path, data: bytes) -> None:
    """New content under `path`: the build hard-links bundle files, so writing in place would
    corrupt the session's bundle that every other test uses."""
    path.unlink()
    path.write_bytes(data)


def _edit_manifest(bundle: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    edit(manifest)
    _replace(bundle / "manifest.json", json.dumps(manifest, indent=2).encode())


def _unknown_format(bundle: Path) -> None:
    _edit_manifest(bundle, lambda m: m.update(format_version=99))


def _format_1(bundle: Path) -> None:
    old = format_1_manifest(json.loads((bundle / "manifest.json").read_text()))
    _replace(bundle / "manifest.json", json.dumps(old, indent=2).encode())


def _missing_file(bundle: Path) -> None:
    (bundle / "sampler.onnx").unlink()


def _truncated_weights(bundle: Path) -> None:
    data = (bundle / WEIGHTS).read_bytes()
    _replace(bundle / WEIGHTS, data[: len(data) // 2])


def _escaping_path(bundle: Path) -> None:
    _edit_manifest(bundle, lambda m: m["files"].update({"../x": m["files"]["tokenizer.json"]}))


DOCTORS: dict[str, Callable[[Path], None]] = {
    "unknown-format": _unknown_format,
    "format-1": _format_1,
    "missing-file": _missing_file,
    "truncated-weights": _truncated_weights,
    "escaping-path": _escaping_path,
}


@pytest.fixture(scope="module")
def doctored_url(tmp_path_factory: pytest.TempPathFactory, export_bundle) -> Iterator[str]:
    """One site whose models are copies of the tiny bundle, each doctored in its own way."""
    bundle = export_bundle("text", "fused")
    site = tmp_path_factory.mktemp("doctored") / "site"
    build_site(SiteSpec(site, [(MODEL_NAME, bundle), *((name, bundle) for name in DOCTORS)]))
    for name, doctor in DOCTORS.items():
        doctor(site / "models" / name)
    with serving(site) as url:
        yield url


def _weights_size(bundle: Path) -> int:
    return int(json.loads((bundle / "manifest.json").read_text())["files"][WEIGHTS]["size"])


def _expected_messages(bundle: Path) -> dict[str, str]:
    size = _weights_size(bundle)
    return {
        "unknown-format": (
            "manifest.json: the bundle has format_version 99; this qwen35web reads format 2: "
            "re-export the model with `qwen35web export`"
        ),
        "format-1": FORMAT_1_MESSAGE,
        "missing-file": "sampler.onnx: the server answered HTTP 404",
        "truncated-weights": (
            f"{WEIGHTS}: {size // 2} bytes received, the manifest says {size} (truncated download?)"
        ),
        "escaping-path": "manifest.json: file path '../x' is not a plain relative path inside the bundle",
    }


@pytest.mark.parametrize("name", list(DOCTORS))
def test_doctored_bundle_rejects_ready_readably(browser, doctored_url: str, export_bundle, name: str) -> None:
    expected = _expected_messages(export_bundle("text", "fused"))[name]
    watched = open_page(browser, doctored_url, "wasm", f"&model={name}")
    try:
        assert _settled(watched, "app.ready") == expected
        watched.page.wait_for_selector("#error:not([hidden])")
        assert watched.page.locator("#error").inner_text() == f"Could not load the model: {expected}"
        assert watched.foreign_requests == []
    finally:
        watched.page.context.close()


def test_an_intact_model_on_the_doctored_site_still_loads(browser, doctored_url: str) -> None:
    """The doctored copies share files with the default model: it must be untouched."""
    watched = open_page(browser, doctored_url, "wasm")
    try:
        assert watched.ready() == {"backend": "wasm", "model": MODEL_NAME}
        watched.assert_clean()
    finally:
        watched.page.context.close()


# --- 3. no WebGPU adapter ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpuless_browser(browser) -> Iterator[Any]:
    """A second Chromium without --enable-unsafe-webgpu and without a GPU process: no adapter,
    not even SwiftShader's fallback one (also on a machine that has a GPU)."""
    other = browser.browser_type.launch(
        executable_path=CHROMIUM, args=[*OFFLINE_FLAGS, "--disable-gpu"], headless=True
    )
    yield other
    other.close()


def test_without_webgpu_adapter_the_page_runs_on_wasm_and_says_why(gpuless_browser, base_url: str) -> None:
    context = gpuless_browser.new_context()
    context.set_default_timeout(READY_TIMEOUT_MS)
    try:
        watched = watch(context, base_url)
        watched.page.goto(base_url)  # no ?backend=: the page chooses
        has_adapter = "navigator.gpu ? navigator.gpu.requestAdapter().then(a => a !== null) : false"
        assert watched.page.evaluate(has_adapter) is False, "this Chromium still offers a WebGPU adapter"
        assert watched.ready() == {"backend": "wasm", "model": MODEL_NAME}
        assert watched.page.evaluate("app.info().backendReason") == NO_ADAPTER_REASON
        # ui.js shows the reason under the model and as the badge's tooltip.
        watched.page.wait_for_function("document.getElementById('backend-reason').textContent !== ''")
        assert watched.page.locator("#backend-reason").inner_text() == NO_ADAPTER_REASON
        badge = watched.page.locator("#backend-badge")
        assert badge.inner_text() == "WASM (CPU)"
        assert badge.get_attribute("title") == NO_ADAPTER_REASON
        watched.assert_clean()
    finally:
        context.close()
